//! Turns a planned `/composite` call into a request and Salesforce's answer into one
//! outcome per operation. No Postgres here.

use std::collections::BTreeMap;

use salesforce::{Client, CompositeSubrequest, CompositeSubresponse, Error, SaveResult};
use serde_json::{Map, Value};
use sync_core::writes::{
    classify_call_error, classify_record, classify_single, if_unmodified_since, CallFault,
    CompositeCall, OpKind, Outcome, RecordError, RecordResult, Subrequest, WriteOp,
};

/// Sends one composite call; returns each operation with its outcome, in plan order.
pub async fn send_call(client: &Client, call: &CompositeCall) -> Vec<(WriteOp, Outcome)> {
    let mut requests = Vec::with_capacity(call.subrequests.len());
    let mut built: Vec<&Subrequest> = Vec::new();
    let mut out: Vec<(WriteOp, Outcome)> = Vec::new();
    for (i, sub) in call.subrequests.iter().enumerate() {
        match subrequest(client, &format!("w{i}"), sub) {
            Ok(r) => {
                requests.push(r);
                built.push(sub);
            }
            // A request we cannot even build (a malformed Id, say) fails its records
            // without sending anything.
            Err(e) => {
                for op in sub.ops() {
                    out.push((
                        op.clone(),
                        Outcome::Failed {
                            status: 400,
                            message: e.to_string(),
                        },
                    ));
                }
            }
        }
    }
    if requests.is_empty() {
        return out;
    }
    match client.composite(false, requests).await {
        Ok(responses) => {
            let mut by_ref: BTreeMap<String, CompositeSubresponse> = responses
                .into_iter()
                .map(|r| (r.reference_id.clone(), r))
                .collect();
            for (i, sub) in call.subrequests.iter().enumerate() {
                if !built.iter().any(|b| std::ptr::eq(*b, sub)) {
                    continue;
                }
                let response = by_ref.remove(&format!("w{i}"));
                out.extend(sub_outcomes(sub, response));
            }
        }
        Err(e) => {
            let outcome = call_outcome(&e);
            for sub in built {
                for op in sub.ops() {
                    out.push((op.clone(), outcome.clone()));
                }
            }
        }
    }
    out
}

fn subrequest(
    client: &Client,
    reference: &str,
    sub: &Subrequest,
) -> salesforce::Result<CompositeSubrequest> {
    match sub {
        Subrequest::Collection { object, kind, ops } => match kind {
            OpKind::Create => {
                let records: Vec<Map<String, Value>> =
                    ops.iter().map(|o| o.fields.clone()).collect();
                client.create_records_subrequest(reference, object, &records, false)
            }
            OpKind::Upsert { field } => {
                let records: Vec<Map<String, Value>> =
                    ops.iter().map(|o| o.fields.clone()).collect();
                client.upsert_records_subrequest(reference, object, field, &records, false)
            }
            OpKind::Update | OpKind::ConditionalUpdate => {
                let records: Vec<Map<String, Value>> = ops.iter().map(with_id).collect();
                client.update_records_subrequest(reference, object, &records, false)
            }
            OpKind::Delete => {
                let ids: Vec<String> = ops.iter().filter_map(|o| o.api_id.clone()).collect();
                client.delete_records_subrequest(reference, &ids, false)
            }
        },
        Subrequest::Single(op) => {
            let id = op.api_id.as_deref().unwrap_or_default();
            check_segment(&op.object)?;
            check_segment(id)?;
            let mut headers = BTreeMap::new();
            if let Some(t) = op.unmodified_since {
                headers.insert("If-Unmodified-Since".to_string(), if_unmodified_since(t));
            }
            Ok(CompositeSubrequest {
                method: "PATCH".into(),
                url: format!("{}/sobjects/{}/{}", client.data_path(), op.object, id),
                reference_id: reference.to_string(),
                body: Some(Value::Object(op.fields.clone())),
                http_headers: headers,
            })
        }
    }
}

fn check_segment(s: &str) -> salesforce::Result<()> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{s:?} is not a valid Salesforce name or id"
        )))
    }
}

fn with_id(op: &WriteOp) -> Map<String, Value> {
    let mut r = op.fields.clone();
    if let Some(id) = &op.api_id {
        r.insert("Id".into(), Value::String(id.clone()));
    }
    r
}

fn sub_outcomes(
    sub: &Subrequest,
    response: Option<CompositeSubresponse>,
) -> Vec<(WriteOp, Outcome)> {
    let ops = sub.ops();
    let Some(response) = response else {
        // Salesforce answered the call but not this part: it may have run.
        return ops
            .iter()
            .map(|o| {
                (
                    o.clone(),
                    Outcome::Unknown {
                        message: "the composite response had no answer for this request".into(),
                    },
                )
            })
            .collect();
    };
    let single = matches!(sub, Subrequest::Single(_));
    if !single && response.is_success() {
        let status = response.http_status_code;
        return match response.into_save_results() {
            Ok(results) if results.len() == ops.len() => ops
                .iter()
                .zip(results.iter())
                .map(|(o, r)| {
                    (
                        o.clone(),
                        classify_record(&o.kind, o.api_id.as_deref(), &record_result(r)),
                    )
                })
                .collect(),
            Ok(results) => unknown_all(
                ops,
                &format!(
                    "HTTP {status}: Salesforce returned {} results for {} records",
                    results.len(),
                    ops.len()
                ),
            ),
            Err(e) => unknown_all(ops, &e.to_string()),
        };
    }
    let status = response.http_status_code;
    let errors = match response.error() {
        Some(Error::Api { errors, .. }) => errors
            .into_iter()
            .map(|e| RecordError {
                code: e.error_code.as_str().to_string(),
                message: e.message,
                fields: e.fields,
            })
            .collect(),
        _ => Vec::new(),
    };
    ops.iter()
        .map(|o| {
            (
                o.clone(),
                classify_single(&o.kind, o.api_id.as_deref(), status, &errors),
            )
        })
        .collect()
}

fn unknown_all(ops: &[WriteOp], message: &str) -> Vec<(WriteOp, Outcome)> {
    ops.iter()
        .map(|o| {
            (
                o.clone(),
                Outcome::Unknown {
                    message: message.to_string(),
                },
            )
        })
        .collect()
}

fn record_result(r: &SaveResult) -> RecordResult {
    RecordResult {
        success: r.success,
        id: r.id.clone(),
        created: r.created,
        errors: r
            .errors
            .iter()
            .map(|e| RecordError {
                code: e.status_code.as_str().to_string(),
                message: e.message.clone(),
                fields: e.fields.clone(),
            })
            .collect(),
    }
}

/// What a failed call means for every operation in it.
pub fn call_outcome(e: &Error) -> Outcome {
    let fault = match e {
        Error::Api {
            status,
            errors,
            retry_after,
        } => CallFault::Refused {
            status: *status,
            errors: errors
                .iter()
                .map(|x| RecordError {
                    code: x.error_code.as_str().to_string(),
                    message: x.message.clone(),
                    fields: x.fields.clone(),
                })
                .collect(),
            retry_after: *retry_after,
        },
        Error::Auth { .. } => CallFault::Login {
            message: e.to_string(),
        },
        // Certainly not sent: plain retry later.
        Error::Connect(_) => {
            return Outcome::Retry {
                message: e.to_string(),
                after: None,
            };
        }
        Error::Config(_) => {
            return Outcome::Failed {
                status: 400,
                message: e.to_string(),
            };
        }
        Error::Transport(_) | Error::Timeout(_) | Error::Decode(_) | Error::Conflict { .. } => {
            CallFault::Lost {
                message: e.to_string(),
            }
        }
    };
    classify_call_error(&fault)
}
