//! ipgate's control plane: its typed values and rules (`domain`), the use
//! cases every front door calls and the publishing of each change into the
//! live table before it is answered (`service`), the sled store (`store`),
//! the security log (`seclog`), mail (`mail`), spreadsheet-safe CSV
//! (`csv`), the HTTP front doors
//! (`http`: admin API, customer API, link pages, portal, and the proxies'
//! sync feed), the error shape both JSON APIs answer with (`api_error`),
//! the limits that keep clients from flooding them (`limits`), the
//! background jobs (`jobs`) and the assembly (`app`).

#![forbid(unsafe_code)]

pub mod api_error;
pub mod app;
pub mod csv;
pub mod domain;
pub mod hex;
pub mod html;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod plain_time;
pub mod seclog;
pub mod service;
pub mod store;
