//! The caller as the entry point established them ([`Principal`]) and the request's id.

use store::{DisplayName, Email, NewUser};

/// The issuer of identities that come from a Lambda authorizer's context: its own namespace,
/// apart from every JWT issuer.
pub const LAMBDA_AUTHORIZER_ISSUER: &str = "lambda-authorizer";

/// The longest subject accepted (the column's limit).
const SUBJECT_MAX: usize = 255;
/// Bytes of an issuer at most. With the subject's 255 bytes, an identity's index key in
/// `users_identity_key` stays well under Aurora DSQL's 1 KiB limit for an index key, which
/// DSQL enforces in bytes (54000 otherwise):
/// <https://docs.aws.amazon.com/aurora-dsql/latest/userguide/CHAP_quotas.html>.
const ISSUER_MAX: usize = 512;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who vouches for the subject: `jwt:<iss>` or [`LAMBDA_AUTHORIZER_ISSUER`].
    pub issuer: String,
    /// The identity provider's stable user id (`sub`), exactly as it sent it.
    pub subject: String,
    pub email: Option<String>,
    /// The issuer says the caller owns `email` (`email_verified`).
    pub email_verified: bool,
    pub name: Option<String>,
}

impl Principal {
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self { issuer: issuer.into(), subject: subject.into(), email: None, email_verified: false, name: None }
    }

    /// The issuer of a JWT's users: `jwt:` and its `iss` claim (empty without one).
    pub fn jwt_issuer(iss: Option<&str>) -> String {
        format!("jwt:{}", iss.unwrap_or_default())
    }

    /// The user row to create on the first call. Claims that do not pass validation (an email
    /// of the wrong shape, an overlong name) are left out rather than failing the request.
    /// `legacy_issuer` is the issuer the deployment trusted before issuers were recorded
    /// (`LEGACY_USER_ISSUER`): only an identity of that issuer may take over a user row of that
    /// time with its subject.
    pub fn new_user(&self, legacy_issuer: Option<&str>) -> NewUser {
        NewUser {
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            name: self.name.as_deref().and_then(|n| DisplayName::parse(n).ok()),
            email: self.email.as_deref().and_then(|e| Email::parse(e).ok()),
            claims_legacy: legacy_issuer == Some(self.issuer.as_str()),
        }
    }

    /// The caller's email, if the issuer says it is verified.
    pub fn verified_email(&self) -> Option<Email> {
        if !self.email_verified {
            return None;
        }
        self.email.as_deref().and_then(|e| Email::parse(e).ok())
    }

    /// Builds a principal from a map of claims (JWT claims, Lambda authorizer context) read as
    /// strings. `None` without a usable `sub`: empty, longer than 255 bytes, or with control
    /// characters (a NUL, say), which no issuer means as part of an identity; and `None` for an
    /// issuer longer than 512 bytes (counted in bytes, not characters: multibyte text counts
    /// as what it stores).
    pub fn from_claims<'a>(issuer: String, get: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        if issuer.len() > ISSUER_MAX {
            return None;
        }
        let subject =
            get("sub").filter(|s| !s.is_empty() && s.len() <= SUBJECT_MAX && !s.chars().any(char::is_control))?;
        Some(Self {
            issuer,
            subject: subject.to_string(),
            email: get("email").map(str::to_string),
            email_verified: get("email_verified").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            name: get("name").map(str::to_string),
        })
    }
}

/// The request id the entry point assigned (the Lambda request id on AWS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);
