//! A Change Data Capture channel of the sync's own (`change_events = 'channel'`): a
//! custom channel in Salesforce (`SequinSf_<sync>_<hash>__chn`) whose members are the
//! sync's live collections that want events (`event_collections`). The sync
//! subscribes to it alone, so it receives, and the org counts as delivered, the change
//! events of its own collections and no others. The channel is kept at once when the
//! wanted collections change and again every describe interval (a member removed in
//! Setup comes back); where the org refuses a member (its limit of entities selected
//! for change events, across all channels) or the user may not make channels, the
//! collections concerned are polled and `sync_status.change_source_note` says why and
//! what to do. A channel the sync no longer uses is deleted by `remove_left`.

use std::collections::BTreeSet;
use std::time::Instant;

use salesforce::cdc::ChannelError;

use crate::catalog::{CollectionRow, SyncConfig};
use crate::db::{tx, Database, DbError};
use crate::error::{passes_by_itself, StepError};
use crate::runtime::SyncRuntime;

/// The channel's full name: readable (the sync's name, letters and digits of it) and
/// unique per database and sync (the hash its call options client carries), within
/// Salesforce's rules for developer names (a letter first, no double underscore).
pub fn channel_name(cfg: &SyncConfig) -> String {
    let readable: String = cfg
        .name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(20)
        .collect();
    let hash: String = cfg
        .call_options_client
        .rsplit('_')
        .next()
        .unwrap_or_default()
        .chars()
        .take(8)
        .collect();
    match readable.is_empty() {
        true => format!("SequinSf_{hash}__chn"),
        false => format!("SequinSf_{readable}_{hash}__chn"),
    }
}

/// The Pub/Sub topic of a custom channel.
pub fn topic(channel: &str) -> String {
    salesforce::cdc::custom_channel_topic(channel)
}

/// Keeps the channel holding the live collections that want events, when due: never
/// kept, the wanted collections changed, or the describe interval passed. Sets which
/// collections are on it (`events.selected`) and why others are not.
pub(super) fn keep_if_due(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    live: &[&CollectionRow],
) -> Result<(), StepError> {
    let wanted: BTreeSet<String> = live
        .iter()
        .filter(|c| cfg.events_wanted_for(&c.object_name))
        .map(|c| c.object_name.clone())
        .collect();
    let due = rt.events.channel_kept_for.as_ref() != Some(&wanted)
        || super::events::selection_due(rt, cfg);
    if !due || !rt.try_spend(2) {
        return Ok(());
    }
    rt.events.selection_read_at = Some(Instant::now());
    let name = channel_name(cfg);
    if cfg.event_channel.as_deref() != Some(name.as_str()) {
        // named before it is made: a crash in between leaves nothing unknown behind
        tx(&*rt.db, |s| name_channel(s, &cfg.name, &name))?;
    }
    let kept = keep(rt, cfg, &name, &wanted);
    // The sync may have been dropped, or moved off its channel, while this pass ran on
    // its earlier settings: a channel it made then is left for `remove_left` to delete,
    // as drop_sync would have.
    tx(&*rt.db, |s| {
        leave_if_unnamed(s, &cfg.name, &name, &cfg.credential)
    })?;
    match kept {
        Ok(on) => {
            rt.events.selected = Some(on);
            rt.events.selection_problem = None;
            rt.events.channel_kept_for = Some(wanted);
        }
        Err(ChannelError::Other(e)) if passes_by_itself(&e) => return Err(e.into()),
        Err(e) => {
            rt.events.selected = Some(BTreeSet::new());
            rt.events.selection_problem = Some(format!(
                "the sync's Change Data Capture channel {name} could not be kept: {e}"
            ));
            rt.events.channel_kept_for = Some(wanted);
        }
    }
    Ok(())
}

/// Stores the channel's name (the stream's replay id is of another topic: dropped); a
/// channel the sync left earlier and uses again is no longer to be deleted.
fn name_channel(s: &mut dyn crate::db::Session, sync: &str, name: &str) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._syncs SET event_channel = $2, replay_id = NULL WHERE name = $1",
        &[sync.into(), name.into()],
    )?;
    s.execute(
        "DELETE FROM sequin_sf._event_channels_left WHERE channel = $2
          AND EXISTS (SELECT 1 FROM sequin_sf._syncs WHERE name = $1 AND event_channel = $2)",
        &[sync.into(), name.into()],
    )
}

/// Leaves channel `name` to be deleted unless sync `sync` still names it.
fn leave_if_unnamed(
    s: &mut dyn crate::db::Session,
    sync: &str,
    name: &str,
    credential: &str,
) -> Result<(), DbError> {
    s.execute(
        "INSERT INTO sequin_sf._event_channels_left (channel, credential)
         SELECT $2, $3 WHERE NOT EXISTS (SELECT 1 FROM sequin_sf._syncs
                                          WHERE name = $1 AND event_channel = $2)
         ON CONFLICT (channel) DO NOTHING",
        &[sync.into(), name.into(), credential.into()],
    )
}

/// Makes the channel exist with `wanted` as its members (adding those missing, removing
/// the others); returns the collections on it. A member the org refuses for its entity
/// limit is noted for its collection, and so are the wanted ones after it.
fn keep(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    name: &str,
    wanted: &BTreeSet<String>,
) -> Result<BTreeSet<String>, ChannelError> {
    let client = rt.client.clone();
    let found = call(rt, client.find_channel(name))?;
    if found.is_none() {
        let label = format!("sequin_sf sync {}", cfg.name);
        call(rt, client.create_channel(name, &label))?;
    }
    let members = call(rt, client.channel_members(name))?;
    let mut on = BTreeSet::new();
    for m in members {
        match m.object.filter(|o| wanted.contains(o)) {
            Some(object) => {
                on.insert(object);
            }
            None => call(rt, client.remove_channel_member(&m.id))?,
        }
    }
    rt.events.not_on_channel.clear();
    let mut refused: Option<String> = None;
    let missing: Vec<&String> = wanted.iter().filter(|o| !on.contains(*o)).collect();
    for object in missing {
        if let Some(why) = &refused {
            rt.events.not_on_channel.insert(object.clone(), why.clone());
            continue;
        }
        match call(rt, client.add_channel_member(name, object)) {
            Ok(_) => {
                on.insert(object.clone());
            }
            Err(ChannelError::EntityLimit { source }) => {
                let why = format!(
                    "not on the sync's channel: the org selects as many objects for Change \
                     Data Capture as it may ({source}); choose the collections that get \
                     events with alter_sync(event_collections => ARRAY[...]), or free a \
                     selection in Setup, or get the Change Data Capture add-on"
                );
                rt.events.not_on_channel.insert(object.clone(), why.clone());
                refused = Some(why);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(on)
}

/// Runs one Tooling call of the channel's upkeep (the budget was taken by the caller
/// for the usual two; more when members change, which is rare).
fn call<T>(
    rt: &SyncRuntime,
    f: impl std::future::Future<Output = Result<T, ChannelError>>,
) -> Result<T, ChannelError> {
    match rt.run_unless_stopping(f) {
        Some(r) => r,
        None => Err(ChannelError::Other(salesforce::Error::Transport(
            "the sync is stopping".into(),
        ))),
    }
}

/// Deletes in Salesforce the channels syncs no longer use (`_event_channels_left`),
/// each with the credential it was made with; one that cannot be deleted yet keeps its
/// row with the reason.
pub fn remove_left(
    db: &dyn Database,
    clients: &crate::syncs::ClientSource,
    tokio: &tokio::runtime::Runtime,
) -> Result<(), DbError> {
    let left = tx(db, |s| {
        s.query(
            "SELECT l.channel, l.credential, EXISTS (SELECT 1 FROM sequin_sf._credentials c
                                                     WHERE c.name = l.credential)
             FROM sequin_sf._event_channels_left l ORDER BY l.left_at",
            &[],
        )
    })?;
    for r in left {
        let (channel, credential) = (r.text(0).unwrap_or_default(), r.text(1).unwrap_or_default());
        let outcome = match r.bool(2) {
            Some(true) => remove_one(clients, tokio, &channel, &credential),
            _ => Err(format!(
                "credential \"{credential}\" was dropped: delete the channel in Salesforce \
                 (Tooling API, PlatformEventChannel {channel}) or create the credential again"
            )),
        };
        tx(db, |s| match &outcome {
            Ok(()) => s.execute(
                "DELETE FROM sequin_sf._event_channels_left WHERE channel = $1",
                &[channel.as_str().into()],
            ),
            Err(why) => s.execute(
                "UPDATE sequin_sf._event_channels_left SET last_error = $2 WHERE channel = $1",
                &[channel.as_str().into(), why.as_str().into()],
            ),
        })?;
    }
    Ok(())
}

fn remove_one(
    clients: &crate::syncs::ClientSource,
    tokio: &tokio::runtime::Runtime,
    channel: &str,
    credential: &str,
) -> Result<(), String> {
    let client = clients(credential, None)?;
    tokio
        .block_on(async {
            match client.find_channel(channel).await {
                Ok(Some(id)) => client.delete_channel(channel, &id).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| e.to_string())
}
