//! The hash chain: sealing, the canonical encoding, and each way of tampering.

mod common;

use audit::{
    Action, Actor, AppendError, AuditRecord, BreakKind, Broken, ChainHead, Entry, GENESIS, ValueError, append,
    canonical, hash, verify,
};
use common::{ALICE, BOB, TENANT, chain, t0};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn head(r: &AuditRecord) -> ChainHead {
    ChainHead { seq: r.seq, hash: r.hash }
}

fn broken(seq: u64, kind: BreakKind) -> Result<Option<ChainHead>, Broken> {
    Err(Broken { seq, kind })
}

#[test]
fn an_untouched_chain_verifies() {
    let c = chain(TENANT, 20);
    assert_eq!(c[0].seq, 1);
    assert_eq!(c[0].prev_hash, GENESIS);
    for w in c.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1);
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
    assert_eq!(verify(TENANT, &c, None), Ok(Some(head(&c[19]))));
    assert_eq!(verify(TENANT, &c, Some(head(&c[19]))), Ok(Some(head(&c[19]))));
    assert_eq!(verify(TENANT, &[], None), Ok(None));
    assert_eq!(verify(TENANT, &[], Some(ChainHead::EMPTY)), Ok(None));
    assert_eq!(verify(TENANT, &c[..1], Some(ChainHead::EMPTY)), broken(1, BreakKind::HeadMismatch));
    assert_eq!(verify(TENANT, &[], Some(head(&c[0]))), broken(1, BreakKind::Truncated));
}

#[test]
fn the_canonical_encoding_is_exactly_as_documented() {
    let entry = Entry {
        tenant_id: TENANT,
        at: t0(),
        actor: Actor::User { user_id: ALICE, issuer: "https://issuer.example".into() },
        action: Action::MemberRoleChanged,
        target: format!("user:{BOB}"),
        request_id: Some("r1".into()),
        before: Some(json!({"role": "member"})),
        after: Some(json!({"z": [1, {"b": "\n\"é/", "a": -2}], "role": "viewer"})),
    };
    let r = append(None, entry).unwrap();
    let expected = format!(
        concat!(
            r#"{{"action":"member.role_changed","actor":{{"issuer":"https://issuer.example","kind":"user","#,
            r#""user_id":"{alice}"}},"after":{{"role":"viewer","z":[1,{{"a":-2,"b":"\n\"é/"}}]}},"#,
            r#""at":"2026-12-03T12:13:20.123456Z","before":{{"role":"member"}},"prev_hash":"{zeros}","#,
            r#""request_id":"r1","seq":1,"target":"user:{bob}","tenant_id":"{tenant}"}}"#
        ),
        alice = ALICE,
        bob = BOB,
        tenant = TENANT,
        zeros = "0".repeat(64)
    );
    assert_eq!(String::from_utf8(canonical(&r)).unwrap(), expected);
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(expected.as_bytes());
    assert_eq!(r.hash, <[u8; 32]>::from(h.finalize()));
    assert_eq!(hash(&r), r.hash);
}

#[test]
fn the_hash_survives_a_json_round_trip() {
    for r in chain(TENANT, 20) {
        let back: AuditRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(hash(&back), r.hash);
    }
}

#[test]
fn append_refuses_secrets_and_missing_request_ids() {
    let entry = |after, request_id: Option<&str>| Entry {
        tenant_id: TENANT,
        at: t0(),
        actor: Actor::User { user_id: ALICE, issuer: "i".into() },
        action: Action::InvitationCreated,
        target: format!("invitation:{}", Uuid::nil()),
        request_id: request_id.map(str::to_owned),
        before: None,
        after,
    };
    assert_eq!(
        append(None, entry(Some(json!({"role": "member", "code": "inv_x"})), Some("r"))),
        Err(AppendError::Value(ValueError::Secret { path: "after.code".into() }))
    );
    assert_eq!(append(None, entry(None, None)), Err(AppendError::RequestIdRequired));
    let full = ChainHead { seq: i64::MAX as u64, hash: [1; 32] };
    assert_eq!(append(Some(full), entry(None, Some("r"))), Err(AppendError::Full));
    let first = append(Some(ChainHead::EMPTY), entry(None, Some("r"))).unwrap();
    assert_eq!(first, append(None, entry(None, Some("r"))).unwrap());
    assert_eq!((first.seq, first.prev_hash), (1, GENESIS));
    let next = append(Some(ChainHead { seq: 41, hash: [9; 32] }), entry(None, Some("r"))).unwrap();
    assert_eq!((next.seq, next.prev_hash), (42, [9; 32]));
}

#[test]
fn a_deleted_record_is_detected() {
    for i in [0, 6, 18] {
        let mut c = chain(TENANT, 20);
        c.remove(i);
        assert_eq!(verify(TENANT, &c, None), broken(i as u64 + 1, BreakKind::Deleted), "record {}", i + 1);
    }
}

#[test]
fn a_deleted_head_is_detected_against_the_known_head() {
    let mut c = chain(TENANT, 20);
    let known = head(&c[19]);
    c.pop();
    assert_eq!(verify(TENANT, &c, Some(known)), broken(20, BreakKind::Truncated));
    // Without a known head, a chain cut at its end looks whole: that is what the head row is for.
    assert_eq!(verify(TENANT, &c, None), Ok(Some(head(&c[18]))));
    // A head that is not the chain's last record.
    let other = ChainHead { seq: 19, hash: [7; 32] };
    assert_eq!(verify(TENANT, &c, Some(other)), broken(19, BreakKind::HeadMismatch));
}

#[test]
fn an_altered_record_is_detected() {
    let alterations: [fn(&mut AuditRecord); 6] = [
        |r| r.target = format!("user:{ALICE}"),
        |r| r.after = Some(json!({"role": "admin"})),
        |r| r.at += time::Duration::microseconds(1),
        |r| r.action = Action::MemberRemoved,
        |r| r.actor = Actor::Operator { name: "someone".into() },
        |r| r.request_id = None,
    ];
    for alter in alterations {
        let mut c = chain(TENANT, 20);
        alter(&mut c[6]);
        assert_eq!(verify(TENANT, &c, None), broken(7, BreakKind::Altered));
    }
}

#[test]
fn an_altered_and_rehashed_record_breaks_the_next_link() {
    let mut c = chain(TENANT, 20);
    c[6].target = format!("user:{ALICE}");
    c[6].hash = hash(&c[6]);
    assert_eq!(verify(TENANT, &c, None), broken(8, BreakKind::Unlinked));
    // Rewriting everything after it too passes, unless the head is known from elsewhere.
    for i in 7..20 {
        c[i].prev_hash = c[i - 1].hash;
        c[i].hash = hash(&c[i]);
    }
    let original = chain(TENANT, 20);
    assert_eq!(verify(TENANT, &c, Some(head(&original[19]))), broken(20, BreakKind::HeadMismatch));
}

#[test]
fn reordered_records_are_detected() {
    let mut c = chain(TENANT, 20);
    c.swap(6, 7);
    assert_eq!(verify(TENANT, &c, None), broken(7, BreakKind::Reordered));
    let mut c = chain(TENANT, 20);
    c.swap(3, 15);
    assert_eq!(verify(TENANT, &c, None), broken(4, BreakKind::Reordered));
    // The same record twice.
    let mut c = chain(TENANT, 20);
    c.insert(10, c[9].clone());
    assert_eq!(verify(TENANT, &c, None), broken(10, BreakKind::Reordered));
}

#[test]
fn renumbered_records_are_detected() {
    // Seqs swapped in place (as an UPDATE of seq would): the content no longer hashes.
    let mut c = chain(TENANT, 20);
    c[6].seq = 8;
    c[7].seq = 7;
    c.swap(6, 7);
    assert_eq!(verify(TENANT, &c, None), broken(7, BreakKind::Altered));
    // Deleted, the rest renumbered and each re-hashed on its own: the links break.
    let mut c = chain(TENANT, 20);
    c.remove(6);
    for r in &mut c[6..] {
        r.seq -= 1;
        r.hash = hash(r);
    }
    assert_eq!(verify(TENANT, &c, None), broken(7, BreakKind::Unlinked));
}

#[test]
fn another_tenants_chain_is_refused() {
    let c = chain(TENANT, 3);
    assert_eq!(verify(Uuid::from_u128(1), &c, None), broken(1, BreakKind::ForeignTenant));
    let mut mixed = chain(TENANT, 3);
    mixed.push(chain(Uuid::from_u128(1), 4).pop().unwrap());
    assert_eq!(verify(TENANT, &mixed, None), broken(4, BreakKind::ForeignTenant));
}

#[test]
fn before_and_after_survive_jsonb() {
    // The input, and what PostgreSQL 15 printed for `'<input>'::jsonb::text` (recorded): keys
    // reordered by length, spaces added, numbers and escapes kept.
    let input = r#"{"z":[1,{"b":"\n\"é/\u0001\t","a":-9223372036854775808}],"role":"viewer","m":18446744073709551615,"long_key":true,"k":null}"#;
    let from_jsonb = r#"{"k": null, "m": 18446744073709551615, "z": [1, {"a": -9223372036854775808, "b": "\n\"é/\u0001\t"}], "role": "viewer", "long_key": true}"#;
    let written: serde_json::Value = serde_json::from_str(input).unwrap();
    let read_back: serde_json::Value = serde_json::from_str(from_jsonb).unwrap();
    assert_eq!(audit::check_values("after", &written), Ok(()));
    let record = |after| {
        let entry = Entry {
            tenant_id: TENANT,
            at: t0(),
            actor: Actor::Operator { name: "ops".into() },
            action: Action::PlanChanged,
            target: format!("tenant:{TENANT}"),
            request_id: None,
            before: None,
            after: Some(after),
        };
        append(None, entry).unwrap()
    };
    assert_eq!(record(written).hash, record(read_back).hash);
}
