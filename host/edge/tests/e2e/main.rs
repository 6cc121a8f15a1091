//! The edge role end to end: real origins on 127.0.0.1:0, the edge on port 0, real HTTP.
//! One test binary (linking wasmtime once); one module per feature.

mod bad_input;
mod basics;
mod buffer_failure;
mod collapse;
mod consumer;
mod operations;
mod policy;
mod positions;
mod purges;
mod range;
mod rfc;
mod support;
mod tls;
