//! The persisted session record: what survives a restart, versioned.
//!
//! The record is JSON with a `schema_version`. [`SessionRecord::decode`] reads every version
//! this build knows (1 and 2) and refuses newer ones with [`RecordError::UnsupportedVersion`],
//! so an older app never overwrites what a newer one wrote. `tests/fixtures/session-record-v1.json`
//! and `session-record-v2.json` are frozen records that the test suite must always read; never
//! edit them, add a new fixture for a new version instead.
//!
//! Version 2 adds `revision`: a counter that every write of the store slot raises (across
//! sessions: a new sign-in continues the count), so that a writer can tell a newer record from
//! an older one and never replaces the newer. A version-1 record reads as revision 0.
//!
//! The encoded record holds tokens and is returned as a [`Secret`].

use serde::{Deserialize, Serialize};

use super::active::{Active, Tokens, refresh_due};
use crate::oidc::dpop::DpopKey;
use crate::{Secret, SessionPolicy, UnixTime};

/// The schema version this build writes.
pub const CURRENT_SCHEMA_VERSION: u32 = 2;
/// The largest record accepted.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Why a stored record could not be used. The stored bytes are left untouched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Written by a newer SessionKit.
    #[error("the stored session has schema version {0}, newer than this app understands")]
    UnsupportedVersion(u32),
    /// Not a session record (or damaged).
    #[error("the stored session record is corrupt: {0}")]
    Corrupt(&'static str),
    /// Written for another issuer or client id.
    #[error("the stored session belongs to a different provider or client")]
    DifferentClient,
}

/// The persisted session (version 2; version 1 lacks `revision`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Always [`CURRENT_SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// Raised by every write of the store slot; 0 for a version-1 record.
    #[serde(default)]
    pub revision: u64,
    /// The session's random id (events and logs use this, never a token).
    pub session_id: String,
    /// The issuer the tokens came from.
    pub issuer: String,
    /// The client id they were issued to.
    pub client_id: String,
    /// The user.
    pub subject: String,
    /// What to call the user on screen (added in place in version 2: older records lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The sign-in's `acr` (added in place: older records lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The sign-in's `auth_time` (added in place: older records lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<UnixTime>,
    /// The DPoP key the tokens are bound to (added in place: older records are Bearer sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<DpopKey>,
    /// The access token.
    pub access_token: Secret,
    /// `Bearer` or `DPoP`.
    pub token_type: String,
    /// When the token request that produced the access token was sent (local time).
    pub access_token_issued_at: UnixTime,
    /// When the access token expires (local time).
    pub access_token_expires_at: UnixTime,
    /// The refresh token, if any.
    pub refresh_token: Option<Secret>,
    /// The latest ID token (for `id_token_hint`).
    pub id_token: Option<Secret>,
    /// Granted scopes, if the provider said.
    pub scope: Option<String>,
    /// Sign-in time: the absolute lifetime counts from here.
    pub started_at: UnixTime,
    /// Last recorded activity: the idle timeout counts from here.
    pub last_activity_at: UnixTime,
    /// The latest time this session saw (clock-jump detection across restarts).
    pub last_seen_at: UnixTime,
    /// Server clock minus local clock, in milliseconds, from the last `Date` header.
    pub server_offset_ms: i64,
}

#[derive(Deserialize)]
struct VersionProbe {
    schema_version: u32,
}

impl SessionRecord {
    /// Encodes the record as JSON.
    pub fn encode(&self) -> Secret {
        // Serializing plain strings, numbers and options cannot fail.
        Secret::new(serde_json::to_string(self).unwrap_or_default())
    }

    /// Decodes any known version.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::Corrupt("larger than 64 KiB"));
        }
        let probe: VersionProbe =
            serde_json::from_slice(bytes).map_err(|_| RecordError::Corrupt("no schema_version"))?;
        match probe.schema_version {
            // Version 1 is version 2 without `revision` (read as 0, the oldest).
            1 | 2 => {
                serde_json::from_slice(bytes).map_err(|_| RecordError::Corrupt("fields missing or of the wrong type"))
            }
            other => Err(RecordError::UnsupportedVersion(other)),
        }
    }
}

// ----- mapping between the record and the active session ---------------------------------

/// What a record holds besides the session: who issued it, and what the writer knew.
pub(super) struct RecordContext<'a> {
    pub(super) issuer: &'a str,
    pub(super) client_id: &'a str,
    pub(super) revision: u64,
    pub(super) last_seen_at: UnixTime,
    pub(super) server_offset_ms: i64,
}

impl SessionRecord {
    /// The record of `active`.
    pub(super) fn of(active: &Active, context: RecordContext<'_>) -> Self {
        let tokens = &active.tokens;
        Self {
            schema_version: CURRENT_SCHEMA_VERSION,
            revision: context.revision,
            session_id: active.session_id.clone(),
            issuer: context.issuer.to_owned(),
            client_id: context.client_id.to_owned(),
            subject: active.subject.clone(),
            display_name: active.display_name.clone(),
            acr: active.acr.clone(),
            auth_time: active.authenticated_at,
            dpop_key: active.dpop_key.clone(),
            access_token: tokens.access_token.clone(),
            token_type: tokens.token_type.clone(),
            access_token_issued_at: tokens.issued_at,
            access_token_expires_at: tokens.expires_at,
            refresh_token: tokens.refresh_token.clone(),
            id_token: tokens.id_token.clone(),
            scope: tokens.scope.clone(),
            started_at: active.started_at,
            last_activity_at: active.last_activity_at,
            last_seen_at: context.last_seen_at,
            server_offset_ms: context.server_offset_ms,
        }
    }
}

impl Active {
    /// The session a record describes, as stored (its record is in the store).
    pub(super) fn from_record(record: SessionRecord, policy: &SessionPolicy) -> Self {
        let tokens = Tokens {
            refresh_due_at: refresh_due(
                record.access_token_issued_at,
                record.access_token_expires_at,
                policy.refresh_lead(),
            ),
            access_token: record.access_token,
            token_type: record.token_type,
            issued_at: record.access_token_issued_at,
            expires_at: record.access_token_expires_at,
            refresh_token: record.refresh_token,
            id_token: record.id_token,
            scope: record.scope,
        };
        let mut active = Active::new(record.session_id, record.subject, tokens, record.started_at, policy);
        active.display_name = record.display_name;
        active.acr = record.acr;
        active.authenticated_at = record.auth_time;
        active.dpop_key = record.dpop_key;
        active.last_activity_at = record.last_activity_at;
        active.activity_persisted_at = record.last_activity_at;
        active.written = true;
        active
    }
}
