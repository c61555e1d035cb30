//! `Client::cdc_selection` against the emulator's Tooling API: the objects selected
//! for Change Data Capture, and the permission error a caller falls back on.

use salesforce::cdc::{SelectionError, VIEW_SETUP_PERMISSION};
use serde_json::json;

use crate::support::*;

fn names(s: &salesforce::cdc::CdcSelection) -> Vec<&str> {
    s.objects.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn selected_objects_over_every_page() {
    let emu =
        Emu::start_with(|c| c.cdc_objects = vec!["Contact".into(), "Invoice__c".into()]).await;
    let client = emu.ready_client().await;
    let s = client.cdc_selection().await.unwrap();
    assert_eq!(names(&s), ["Contact", "Invoice__c"]);
    assert!(s.unrecognized.is_empty());

    // One object a page: three requests, nothing lost between pages.
    emu.control(
        "PUT",
        "cdc",
        Some(json!({"objects": ["Lead", "Account", "Contact"], "tooling_page_size": 1})),
    )
    .await;
    let before = emu.api_requests().await;
    let s = client.cdc_selection().await.unwrap();
    assert_eq!(names(&s), ["Account", "Contact", "Lead"]);
    assert_eq!(emu.api_requests().await - before, 3);

    emu.control("PUT", "cdc", Some(json!({"objects": []})))
        .await;
    assert!(client.cdc_selection().await.unwrap().objects.is_empty());
}

#[tokio::test]
async fn a_user_without_view_setup_gets_a_permission_error() {
    let emu = Emu::start_with(|c| c.cdc_objects = vec!["Contact".into()]).await;
    emu.control("PUT", "cdc", Some(json!({"tooling_access": false})))
        .await;
    let client = emu.ready_client().await;
    let err = client.cdc_selection().await.unwrap_err();
    match &err {
        SelectionError::MissingPermission { permission, .. } => {
            assert_eq!(*permission, VIEW_SETUP_PERMISSION)
        }
        other => panic!("expected MissingPermission, got {other:?}"),
    }
    assert!(
        err.to_string().contains("View Setup and Configuration"),
        "{err}"
    );

    emu.control("PUT", "cdc", Some(json!({"tooling_access": true})))
        .await;
    assert_eq!(names(&client.cdc_selection().await.unwrap()), ["Contact"]);
}

#[tokio::test]
async fn other_failures_stay_what_they_are() {
    let emu = Emu::start().await;
    let client = emu.ready_client().await;
    emu.fault("503", 1, Some("/tooling/query")).await;
    let err = client.cdc_selection().await.unwrap_err();
    match err {
        SelectionError::Other(e) => assert!(e.is_transient(), "{e}"),
        other => panic!("expected Other, got {other:?}"),
    }
}
