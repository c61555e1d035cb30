//! The client against the real emulator, started in-process per test.

mod support;

mod auth;
mod bulk;
mod cdc;
mod cdc_selection;
mod composite;
mod describe;
mod errors;
mod pacing;
mod query;
mod tls;
mod writes;
