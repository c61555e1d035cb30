//! Bulk API 2.0 query and ingest jobs.

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Req, Resp};

#[derive(Default)]
pub struct Jobs {}

impl Jobs {
    pub fn query_job_count(&self) -> usize {
        0
    }
}

pub fn query_route(_app: &App, _req: &Req, _v: &str, _rest: &[String]) -> Result<Resp, ApiError> {
    Err(ApiError::not_found())
}

pub fn ingest_route(_app: &App, _req: &Req, _v: &str, _rest: &[String]) -> Result<Resp, ApiError> {
    Err(ApiError::not_found())
}
