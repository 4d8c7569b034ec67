//! The small request and response bodies of the LAPI v1 API.

use serde::{Deserialize, Serialize};

use crate::decision::Decision;

/// `POST /v1/watchers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatcherRegistration {
    /// Machine id (login).
    pub machine_id: String,
    /// Password, stored bcrypt-hashed.
    pub password: String,
    /// Auto-registration token; when it matches the server's, the machine is validated at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token: Option<String>,
}

/// `POST /v1/watchers/login`. TLS-authenticated agents send only `scenarios`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatcherAuthRequest {
    /// Machine id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Installed scenarios, stored on the machine (shared with the central API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenarios: Option<Vec<String>>,
}

/// Login answer: a JWT and its expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatcherAuthResponse {
    /// HTTP status, repeated (`200`).
    pub code: u16,
    /// RFC 3339 expiry of the token.
    pub expire: String,
    /// The JWT.
    pub token: String,
}

/// `{"nbDeleted": "N"}` (a number as a string, as CrowdSec sends it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteResponse {
    /// How many rows were deleted or expired.
    #[serde(rename = "nbDeleted")]
    pub nb_deleted: String,
}

/// `GET /v1/decisions/stream`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamResponse {
    /// Decisions that became active since the previous pull.
    #[serde(default, deserialize_with = "crate::alert::null_as_default")]
    pub new: Vec<Decision>,
    /// Decisions that expired or were deleted since the previous pull.
    #[serde(default, deserialize_with = "crate::alert::null_as_default")]
    pub deleted: Vec<Decision>,
}

/// Error body of every 4xx/5xx: `{"message": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong, for people.
    pub message: String,
    /// Field-level details, when there are several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<String>,
}
