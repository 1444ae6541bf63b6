//! The API's domain values, parsed and validated before they reach a query.
//!
//! - [`model`]-level values: ids ([`TenantId`], [`UserId`], [`TodoId`], [`InvitationId`]),
//!   names and titles that parse or say why not ([`Invalid`]), [`Role`], and RFC 3339 writing
//!   ([`rfc3339_text`]).
//! - Records the API answers with ([`Tenant`], [`Todo`], [`User`], [`Member`], ...), and the
//!   inputs built of values ([`NewUser`], [`TodoPatch`], [`TodoFilter`]).
//! - Pages: [`PageRequest`] with its [`Limit`] and opaque [`Cursor`], and [`Page`].
//! - Invitations: the single-use [`InvitationCode`] (hidden from `Debug`, stored as its hash),
//!   [`NewInvitation`] and [`Invitation`].
//!
//! It knows no SQL, no connection, no HTTP and no async runtime: `store` reads and writes
//! these, `api` parses requests into them.

mod invitation;
mod model;
mod page;
mod records;

pub use invitation::{INVITATION_LIFE, Invitation, InvitationCode, NewInvitation};
pub use model::{
    DisplayName, Email, Invalid, InvitationId, RFC3339_MAX, Role, TenantId, TenantName, TodoId, TodoTitle, UserId,
    parse_uuid, rfc3339_text,
};
pub use page::{Cursor, Limit, Page, PageRequest};
pub use records::{Count, Member, Membership, NewUser, Tenant, TenantDetail, Todo, TodoFilter, TodoPatch, Usage, User};
