//! Sample chains and exports for the tests.
#![allow(dead_code)]

use audit::{
    Action, Actor, Audit, AuditRecord, ChainHead, Entry, Header, Invitation, Item, Member, Plan, Profile, Role, Source,
    Tenant, Todo, Writer, append,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

pub const TENANT: Uuid = Uuid::from_u128(0x1081_24a5_2e34_418a_9735_b930_82e9_fbf2);
pub const ALICE: Uuid = Uuid::from_u128(0xde77_f876_172d_4070_884e_6928_c169_7d81);
pub const BOB: Uuid = Uuid::from_u128(0x163b_db7d_9be2_4a9f_81f2_c4ba_28b8_b439);

pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_796_300_000).unwrap() + Duration::microseconds(123_456)
}

/// A chain of `n` records of `tenant`, with a mix of actors and actions.
pub fn chain(tenant: Uuid, n: usize) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    for i in 0..n {
        let head = out.last().map(|r| ChainHead { seq: r.seq, hash: r.hash });
        let action = audit::Action::ALL[i % Action::ALL.len()];
        let actor = if i % 5 == 4 {
            Actor::Operator { name: "ops".into() }
        } else {
            Actor::User { user_id: ALICE, issuer: "https://issuer.example".into() }
        };
        let request_id = match actor {
            Actor::User { .. } => Some(format!("req-{i}")),
            Actor::Operator { .. } => None,
        };
        let entry = Entry {
            tenant_id: tenant,
            at: t0() + Duration::seconds(i as i64),
            actor,
            action,
            target: format!("user:{BOB}"),
            request_id,
            before: (i % 2 == 0).then(|| json!({"role": "member", "n": i})),
            after: Some(json!({"role": "viewer", "note": "línea \"1\"\n", "nested": {"b": [1, 2], "a": null}})),
        };
        out.push(append(head, entry).unwrap());
    }
    out
}

pub fn header(tenant: Uuid) -> Header {
    let source = Source { engine: "postgres".into(), placement: "pooled".into(), app_version: "0.1.0".into() };
    Header::new(tenant, t0(), source)
}

pub fn todo(i: u64) -> Todo {
    Todo {
        id: Uuid::from_u128(0x0b6f_1a52_0000_0000_0000_0000_0000_0000 + u128::from(i)),
        title: format!("todo {i}"),
        complete: i.is_multiple_of(3),
        created_at: t0(),
        updated_at: t0() + Duration::microseconds(i as i64),
    }
}

/// One item of every kind, in order, with `audits` audit records.
pub fn items(tenant: Uuid, todos: u64, audits: usize) -> Vec<Item> {
    let mut items = vec![
        Item::Tenant(Tenant { id: tenant, name: "my first customer".into(), created_at: t0() }),
        Item::Plan(Plan { name: "free".into() }),
        Item::Member(Member {
            user_id: ALICE,
            role: Role::Admin,
            joined_at: t0(),
            profile: Profile {
                subject: "alice".into(),
                name: Some("Alice".into()),
                email: Some("alice@example.com".into()),
                created_at: t0(),
            },
        }),
        Item::Member(Member {
            user_id: BOB,
            role: Role::Viewer,
            joined_at: t0(),
            profile: Profile { subject: "bob".into(), name: None, email: None, created_at: t0() },
        }),
        Item::Invitation(Invitation {
            id: Uuid::from_u128(7),
            role: Role::Member,
            email: Some("carol@example.com".into()),
            created_by: Some(ALICE),
            created_at: t0(),
            expires_at: t0() + Duration::days(7),
        }),
    ];
    items.extend((0..todos).map(|i| Item::Todo(todo(i))));
    items.extend(chain(tenant, audits).into_iter().map(|record| Item::Audit(Audit { imported_from: None, record })));
    items
}

/// The export of `items`, as bytes.
pub fn export(header: &Header, items: &[Item]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), header).unwrap();
    for item in items {
        w.write(item).unwrap();
    }
    w.finish().unwrap()
}
