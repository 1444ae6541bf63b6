//! Who is calling. The entry point (Lambda adapter, dev server) establishes a [`Principal`]
//! from something it trusts (API Gateway's authorizer, or a bearer token it verifies itself)
//! and puts it into the request's extensions, where a client cannot put anything. The app never
//! reads identity from a header.
//!
//! A user is keyed on (issuer, subject): the same `sub` from two issuers, or from a Lambda
//! authorizer and a JWT, is two users. Subjects are opaque: compared exactly, never trimmed.

pub use crate::jwt::{JwtVerifier, TokenError, VerifyKey};
#[cfg(any(test, feature = "test-util"))]
pub use crate::jwt::{mint_hs256, mint_hs256_claims};

mod principal;

pub use principal::{LAMBDA_AUTHORIZER_ISSUER, Principal, RequestId};

#[cfg(test)]
mod tests;
