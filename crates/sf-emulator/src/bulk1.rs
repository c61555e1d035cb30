//! Bulk API 1.0 query jobs (XML).

use crate::app::App;
use crate::http::{Req, Resp};

#[derive(Default)]
pub struct Jobs {}

pub fn route(_app: &App, _req: &Req, _v: &str, _rest: &[String]) -> Resp {
    Resp::empty(404)
}
