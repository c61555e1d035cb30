//! What an answer from Salesforce means for a write: settled (succeeded or failed with
//! Salesforce's own words), worth another try later, or of unknown effect.

use std::time::Duration;

use super::plan::OpKind;

/// The fate of one operation's log entries.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        /// The record's Id (for creates, the one Salesforce assigned).
        api_id: Option<String>,
        /// The HTTP status a single-record call would have returned.
        status: u16,
        message: Option<String>,
    },
    Failed {
        status: u16,
        /// Salesforce's error codes and messages, verbatim.
        message: String,
    },
    /// Certainly not applied and likely to pass later (locks, load, quota, session):
    /// send again after a backoff. Never becomes `failed`.
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// Possibly applied (the response was lost): reconcile before sending again.
    Unknown { message: String },
}

impl Outcome {
    pub fn is_settled(&self) -> bool {
        matches!(self, Outcome::Succeeded { .. } | Outcome::Failed { .. })
    }
}

/// One entry of a save result's `errors` (or of an error array).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordError {
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
}

/// One record's result in an sObject Collections response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordResult {
    pub success: bool,
    pub id: Option<String>,
    pub created: Option<bool>,
    pub errors: Vec<RecordError>,
}

/// How a whole call went wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum CallFault {
    /// Salesforce answered with an error status: nothing in the call was applied.
    Refused {
        status: u16,
        errors: Vec<RecordError>,
        retry_after: Option<Duration>,
    },
    /// Logging in failed (bad or revoked credential, login host down): nothing sent.
    Login { message: String },
    /// The request may have reached Salesforce but no usable answer came back
    /// (connection dropped, timeout, undecodable body).
    Lost { message: String },
}

/// Codes whose condition passes with time.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "UNABLE_TO_LOCK_ROW"
            | "REQUEST_LIMIT_EXCEEDED"
            | "QUERY_TIMEOUT"
            | "SERVER_UNAVAILABLE"
            | "CONCURRENT_REQUEST_LIMIT_EXCEEDED"
            | "INVALID_SESSION_ID"
            // Only with allOrNone, which we never set; harmless to retry.
            | "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    )
}

fn is_gone_code(code: &str) -> bool {
    matches!(code, "ENTITY_IS_DELETED" | "NOT_FOUND")
}

fn status_for_code(code: &str) -> u16 {
    match code {
        "NOT_FOUND" | "ENTITY_IS_DELETED" => 404,
        "PRECONDITION_FAILED" => 412,
        "REQUEST_LIMIT_EXCEEDED" => 403,
        "SERVER_UNAVAILABLE" => 503,
        _ => 400,
    }
}

/// `CODE: message (fields: A, B); CODE2: ...`, Salesforce's words kept intact.
pub fn describe_errors(errors: &[RecordError]) -> String {
    if errors.is_empty() {
        return "Salesforce reported a failure without details".into();
    }
    errors
        .iter()
        .map(|e| {
            if e.fields.is_empty() {
                format!("{}: {}", e.code, e.message)
            } else {
                format!(
                    "{}: {} (fields: {})",
                    e.code,
                    e.message,
                    e.fields.join(", ")
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn success_status(kind: &OpKind, created: Option<bool>) -> u16 {
    match kind {
        OpKind::Create => 201,
        OpKind::Upsert { .. } => {
            if created == Some(false) {
                200
            } else {
                201
            }
        }
        OpKind::Update | OpKind::ConditionalUpdate | OpKind::Delete => 204,
    }
}

/// One record of a collection response. `api_id` is the id the operation targeted
/// (updates and deletes); creates take Salesforce's.
pub fn classify_record(kind: &OpKind, api_id: Option<&str>, r: &RecordResult) -> Outcome {
    if r.success {
        let message = match (kind, r.created) {
            (OpKind::Upsert { .. }, Some(false)) => {
                Some("the record already existed (sent before); matched by external id".into())
            }
            _ => None,
        };
        return Outcome::Succeeded {
            api_id: r.id.clone().or_else(|| api_id.map(str::to_string)),
            status: success_status(kind, r.created),
            message,
        };
    }
    if r.errors.iter().any(|e| is_transient_code(&e.code)) {
        return Outcome::Retry {
            message: describe_errors(&r.errors),
            after: None,
        };
    }
    if *kind == OpKind::Delete
        && r.errors.iter().all(|e| is_gone_code(&e.code))
        && !r.errors.is_empty()
    {
        return Outcome::Succeeded {
            api_id: api_id.map(str::to_string),
            status: 204,
            message: Some(format!(
                "already deleted in Salesforce ({})",
                describe_errors(&r.errors)
            )),
        };
    }
    let status = r
        .errors
        .first()
        .map(|e| status_for_code(&e.code))
        .unwrap_or(400);
    Outcome::Failed {
        status,
        message: describe_errors(&r.errors),
    }
}

/// A subresponse that stands for one operation (a conditional update) or for a whole
/// collection that Salesforce refused as a unit.
pub fn classify_single(
    kind: &OpKind,
    api_id: Option<&str>,
    status: u16,
    errors: &[RecordError],
) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Succeeded {
            api_id: api_id.map(str::to_string),
            status: if status == 200 && *kind != OpKind::Create {
                204
            } else {
                status
            },
            message: None,
        };
    }
    if status == 412 {
        let said = if errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", describe_errors(errors))
        };
        return Outcome::Failed {
            status,
            message: format!(
                "conflict: the record was changed in Salesforce after this row last synced, \
                 so the update was not applied{said}"
            ),
        };
    }
    if status >= 500 {
        return server_error(status, errors);
    }
    if status == 401 || errors.iter().any(|e| is_transient_code(&e.code)) {
        return Outcome::Retry {
            message: format!("HTTP {status}: {}", describe_errors(errors)),
            after: None,
        };
    }
    if *kind == OpKind::Delete && (status == 404 || errors.iter().all(|e| is_gone_code(&e.code))) {
        return Outcome::Succeeded {
            api_id: api_id.map(str::to_string),
            status: 204,
            message: Some(format!(
                "already deleted in Salesforce ({})",
                describe_errors(errors)
            )),
        };
    }
    Outcome::Failed {
        status,
        message: describe_errors(errors),
    }
}

/// A call that failed as a whole: every operation in it gets this outcome.
pub fn classify_call_error(fault: &CallFault) -> Outcome {
    match fault {
        CallFault::Refused {
            status,
            errors,
            retry_after,
        } => {
            if *status >= 500 {
                return server_error(*status, errors);
            }
            // A 403 is transient only when it says so (REQUEST_LIMIT_EXCEEDED); others
            // (API disabled, insufficient access) need a person and would never pass.
            if *status == 401 || errors.iter().any(|e| is_transient_code(&e.code)) {
                Outcome::Retry {
                    message: format!("HTTP {status}: {}", describe_errors(errors)),
                    after: *retry_after,
                }
            } else {
                Outcome::Failed {
                    status: *status,
                    message: describe_errors(errors),
                }
            }
        }
        // A credential problem is for the administrator to fix; the writes wait.
        CallFault::Login { message } => Outcome::Retry {
            message: message.clone(),
            after: Some(Duration::from_secs(30)),
        },
        CallFault::Lost { message } => Outcome::Unknown {
            message: message.clone(),
        },
    }
}

/// A 5xx answer: a gateway or server error may come after Salesforce committed the
/// change, so the effect is unknown. Idempotent operations are simply sent again
/// (`resolve_unknown`); a plain create is surfaced rather than risk a duplicate.
fn server_error(status: u16, errors: &[RecordError]) -> Outcome {
    Outcome::Unknown {
        message: format!("HTTP {status}: {}", describe_errors(errors)),
    }
}

/// What to do with an operation whose outcome is unknown (the answer was lost): an
/// idempotent one is simply sent again; a plain create is settled as failed and
/// surfaced (true), since sending it again could create the record twice.
pub fn resolve_unknown(kind: &OpKind, outcome: Outcome) -> (Outcome, bool) {
    match outcome {
        Outcome::Unknown { message } if kind.is_idempotent() => (
            Outcome::Retry {
                message: format!("no answer from Salesforce ({message}); sending again"),
                after: None,
            },
            false,
        ),
        Outcome::Unknown { message } => (
            Outcome::Failed {
                status: 0,
                message: unknown_create_message(&message),
            },
            true,
        ),
        other => (other, false),
    }
}

/// The message of a create whose outcome is unknown; says what to check and do.
pub fn unknown_create_message(detail: &str) -> String {
    format!(
        "outcome unknown: the create was sent but no answer arrived ({detail}), so the \
         record may or may not exist in Salesforce. It was not sent again, to avoid a \
         duplicate. Check Salesforce; if the record is missing, run \
         sequin_sf.retry_writes(ids => ARRAY[<this entry's id>]). Configure an external id \
         field (sequin_sf.alter_write_settings(sync, external_id_fields => ...)) to make \
         creates safe to resend."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: &str, msg: &str) -> RecordError {
        RecordError {
            code: code.into(),
            message: msg.into(),
            fields: vec![],
        }
    }

    fn failed(errors: Vec<RecordError>) -> RecordResult {
        RecordResult {
            success: false,
            errors,
            ..Default::default()
        }
    }

    #[test]
    fn record_successes_carry_ids_and_statuses() {
        let r = RecordResult {
            success: true,
            id: Some("003A".into()),
            ..Default::default()
        };
        assert_eq!(
            classify_record(&OpKind::Create, None, &r),
            Outcome::Succeeded {
                api_id: Some("003A".into()),
                status: 201,
                message: None
            }
        );
        let upd = RecordResult {
            success: true,
            ..Default::default()
        };
        assert!(matches!(
            classify_record(&OpKind::Update, Some("003B"), &upd),
            Outcome::Succeeded { api_id: Some(ref id), status: 204, .. } if id == "003B"
        ));
        let again = RecordResult {
            success: true,
            id: Some("003C".into()),
            created: Some(false),
            ..Default::default()
        };
        let up = OpKind::Upsert {
            field: "Ext__c".into(),
        };
        assert!(matches!(
            classify_record(&up, None, &again),
            Outcome::Succeeded {
                status: 200,
                message: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn record_failures_keep_salesforce_words_and_transients_retry() {
        let mut e = err(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [LastName]",
        );
        e.fields = vec!["LastName".into()];
        let out = classify_record(&OpKind::Create, None, &failed(vec![e]));
        assert_eq!(
            out,
            Outcome::Failed {
                status: 400,
                message: "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)".into()
            }
        );
        let lock = failed(vec![err(
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access",
        )]);
        assert!(matches!(
            classify_record(&OpKind::Update, Some("x"), &lock),
            Outcome::Retry { .. }
        ));
        let gone = failed(vec![err("ENTITY_IS_DELETED", "entity is deleted")]);
        assert!(matches!(
            classify_record(&OpKind::Delete, Some("x"), &gone),
            Outcome::Succeeded { .. }
        ));
        assert!(matches!(
            classify_record(&OpKind::Update, Some("x"), &gone),
            Outcome::Failed { status: 404, .. }
        ));
        assert!(!Outcome::Retry {
            message: String::new(),
            after: None
        }
        .is_settled());
    }

    #[test]
    fn single_subresponses() {
        let k = OpKind::ConditionalUpdate;
        assert!(matches!(
            classify_single(&k, Some("x"), 204, &[]),
            Outcome::Succeeded { status: 204, .. }
        ));
        match classify_single(&k, Some("x"), 412, &[]) {
            Outcome::Failed { status, message } => {
                assert_eq!(status, 412);
                assert!(message.starts_with("conflict"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_single(&k, Some("x"), 503, &[err("SERVER_UNAVAILABLE", "down")]),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(
            classify_single(&k, Some("x"), 400, &[err("UNABLE_TO_LOCK_ROW", "busy")]),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify_single(
                &k,
                Some("x"),
                400,
                &[err("FIELD_CUSTOM_VALIDATION_EXCEPTION", "no")]
            ),
            Outcome::Failed { status: 400, .. }
        ));
    }

    #[test]
    fn whole_call_faults() {
        let quota = CallFault::Refused {
            status: 403,
            errors: vec![err(
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            )],
            retry_after: None,
        };
        assert!(matches!(classify_call_error(&quota), Outcome::Retry { .. }));
        let down = CallFault::Refused {
            status: 503,
            errors: vec![],
            retry_after: Some(Duration::from_secs(2)),
        };
        // the server may have applied it: unknown (resent only when idempotent)
        assert_eq!(
            classify_call_error(&down),
            Outcome::Unknown {
                message: "HTTP 503: Salesforce reported a failure without details".into(),
            }
        );
        let denied = CallFault::Refused {
            status: 403,
            errors: vec![err("API_DISABLED_FOR_ORG", "API is not enabled")],
            retry_after: None,
        };
        assert!(matches!(
            classify_call_error(&denied),
            Outcome::Failed { status: 403, .. }
        ));
        let bad = CallFault::Refused {
            status: 400,
            errors: vec![err("JSON_PARSER_ERROR", "bad")],
            retry_after: None,
        };
        assert!(matches!(
            classify_call_error(&bad),
            Outcome::Failed { status: 400, .. }
        ));
        let lost = CallFault::Lost {
            message: "timed out".into(),
        };
        assert!(matches!(
            classify_call_error(&lost),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(
            classify_call_error(&CallFault::Login {
                message: "bad".into()
            }),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn unknown_outcomes_resend_idempotent_ops_and_surface_creates() {
        let lost = || Outcome::Unknown {
            message: "timed out".into(),
        };
        let upsert = OpKind::Upsert {
            field: "Ext__c".into(),
        };
        for kind in [OpKind::Update, OpKind::Delete, upsert] {
            assert!(matches!(
                resolve_unknown(&kind, lost()),
                (Outcome::Retry { .. }, false)
            ));
        }
        match resolve_unknown(&OpKind::Create, lost()) {
            (Outcome::Failed { message, .. }, true) => {
                assert!(message.starts_with("outcome unknown"));
                assert!(message.contains("timed out"));
            }
            other => panic!("{other:?}"),
        }
        let ok = Outcome::Succeeded {
            api_id: None,
            status: 204,
            message: None,
        };
        assert_eq!(resolve_unknown(&OpKind::Create, ok.clone()), (ok, false));
    }
}
