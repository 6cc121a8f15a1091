//! End-to-end tests: one binary, one module per feature. Components are built by
//! `make policies` (which `make test` runs first).

mod cli;
mod edge_cli;
mod hostile;
mod layering;
mod policy_cases;
mod runtime;
