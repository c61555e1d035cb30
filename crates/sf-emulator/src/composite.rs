//! sObject Collections, `/composite` and `/composite/batch`.

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Req, Resp};
use std::sync::Arc;

pub fn batch_cost(_req: &Req) -> u64 {
    1
}

pub async fn composite(_app: &Arc<App>, _req: &Req, _v: &str) -> Result<Resp, ApiError> {
    Err(ApiError::not_found())
}

pub async fn batch(_app: &Arc<App>, _req: &Req, _v: &str) -> Result<Resp, ApiError> {
    Err(ApiError::not_found())
}

pub fn collections(_app: &App, _req: &Req, _v: &str) -> Result<Resp, ApiError> {
    Err(ApiError::not_found())
}

pub fn collections_upsert(_app: &App, _req: &Req, _v: &str, _o: &str, _f: &str) -> Result<Resp, ApiError> {
    Err(ApiError::not_found())
}
