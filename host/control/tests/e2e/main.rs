//! End-to-end tests of the control role's API: real HTTP on 127.0.0.1:0, a real SQLite file in
//! a temporary directory. One binary, one module per feature; the harness is in `support`.

mod admin;
mod auth;
mod bulk;
mod fold;
mod health;
mod liveness;
mod openapi;
mod queue_server;
mod retention;
mod status;
mod submit;
mod support;
mod tls;
