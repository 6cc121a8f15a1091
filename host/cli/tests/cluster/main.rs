//! The whole product over real sockets and real certificates (issue [4]): a control node and
//! three edges as separate processes of the real binary, joined by the mutual-TLS queue
//! transport. One module per feature; the builder is in `harness`.

#![cfg(unix)]

#[path = "../support/mod.rs"]
mod support;

mod chaos;
mod harness;
mod origin;

mod delivery;
mod handshake;
mod policy;
mod queues;
