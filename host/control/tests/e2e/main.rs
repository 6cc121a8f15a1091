//! End-to-end tests of the control role's API: real HTTP on 127.0.0.1:0, a real SQLite file in
//! a temporary directory. One binary, one module per feature; the harness is in `support`.

mod admin;
mod auth;
mod bulk;
mod contract;
mod contract_cases;
mod fold;
mod health;
mod liveness;
mod openapi;
mod positions;
mod queue_server;
mod queue_support;
mod retention;
mod schema;
mod status;
mod submit;
mod support;
mod tls;
