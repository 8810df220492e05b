//! Integration tests: the real server on ephemeral ports, talked to over HTTP. One binary with
//! modules, because on two cores linking many test binaries dominates test time.

mod access;
mod admin;
mod browser;
mod cdn;
mod cli;
mod common;
mod consent_js;
mod console_browser;
mod console_client;
mod console_destinations;
mod console_pages_a;
mod console_pages_b;
mod console_retl;
mod console_users;
mod debugger;
mod delivery;
mod destinations_catalog;
mod durability;
mod filters;
mod harness;
mod person;
mod regulations;
mod retl;
mod routing;
mod sdk;
mod tracking;
