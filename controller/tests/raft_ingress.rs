//! Input: hostile raft messages. Whatever a peer sends (arbitrary types, terms up to `u64::MAX`,
//! indexes past the log, entries out of order, garbage snapshots), a controller never panics,
//! keeps its invariants, and its term moves by at most `raft_ingress::TERM_AHEAD_MAX` per
//! message (a forged term far ahead is dropped, not adopted).
#![allow(clippy::unwrap_used)]

use controller::raft_ingress::{self, TERM_AHEAD_MAX};
use controller::raft_prelude::{Entry, EntryType, Message, MessageType, Snapshot};
use controller::{Controller, ControllerConfig, ControllerError, Effect, RaftStore};
use proptest::prelude::*;

const VOTERS: [u64; 3] = [1, 2, 3];

/// Every message type raft-rs knows, local-only ones included.
const TYPES: [MessageType; 19] = [
    MessageType::MsgHup,
    MessageType::MsgBeat,
    MessageType::MsgPropose,
    MessageType::MsgAppend,
    MessageType::MsgAppendResponse,
    MessageType::MsgRequestVote,
    MessageType::MsgRequestVoteResponse,
    MessageType::MsgSnapshot,
    MessageType::MsgHeartbeat,
    MessageType::MsgHeartbeatResponse,
    MessageType::MsgUnreachable,
    MessageType::MsgSnapStatus,
    MessageType::MsgCheckQuorum,
    MessageType::MsgTransferLeader,
    MessageType::MsgTimeoutNow,
    MessageType::MsgReadIndex,
    MessageType::MsgReadIndexResp,
    MessageType::MsgRequestPreVote,
    MessageType::MsgRequestPreVoteResponse,
];

/// A node that carries out its own effects at once (persists complete, sends vanish).
struct Node {
    ctl: Controller,
    now_ms: u64,
}

impl Node {
    fn new() -> Node {
        let config = ControllerConfig::new(1, VOTERS.to_vec());
        let ctl = Controller::new(config, RaftStore::bootstrap(&VOTERS), 0);
        let mut node = Node { ctl, now_ms: 0 };
        node.drain();
        node
    }

    fn drain(&mut self) {
        loop {
            let effects = self.ctl.take_effects();
            if effects.is_empty() {
                break;
            }
            for effect in effects {
                if let Effect::Persist(batch) = effect {
                    self.ctl.persist_complete(batch.id);
                }
            }
        }
        self.ctl.check_invariants().unwrap();
    }

    fn tick(&mut self) {
        self.now_ms += 100;
        self.ctl.tick(self.now_ms);
        self.drain();
    }
}

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..12u64,
        1 => Just(u64::MAX),
        1 => Just(1_000_000_000_000u64),
        1 => (TERM_AHEAD_MAX - 2)..(TERM_AHEAD_MAX + 3),
        1 => any::<u64>(),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        number(),
        number(),
        prop::collection::vec(any::<u8>(), 0..12),
        any::<bool>(),
    )
        .prop_map(|(index, term, data, conf_change)| {
            let mut entry = Entry {
                index,
                term,
                data: data.into(),
                ..Entry::default()
            };
            if conf_change {
                entry.set_entry_type(EntryType::EntryConfChange);
            }
            entry
        })
}

fn snapshot() -> impl Strategy<Value = Option<Snapshot>> {
    let some = (
        number(),
        number(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(index, term, our_voters, data)| {
            let mut snapshot = Snapshot {
                data: data.into(),
                ..Snapshot::default()
            };
            snapshot.mut_metadata().index = index;
            snapshot.mut_metadata().term = term;
            let voters = if our_voters {
                VOTERS.to_vec()
            } else {
                vec![1, 4]
            };
            snapshot.mut_metadata().mut_conf_state().voters = voters;
            Some(snapshot)
        });
    prop_oneof![4 => Just(None), 1 => some]
}

/// A message from a (claimed) peer: sometimes well-formed appends a leader could send, mostly
/// anything.
fn message() -> impl Strategy<Value = Message> {
    (
        (
            0..TYPES.len(),
            0..5u64,
            prop_oneof![9 => Just(1u64), 1 => 0..5u64],
        ),
        (number(), number(), number(), number()),
        (any::<bool>(), number()),
        (
            prop::collection::vec(entry(), 0..4),
            any::<bool>(),
            snapshot(),
        ),
    )
        .prop_map(
            |(
                (kind, from, to),
                (term, index, log_term, commit),
                (reject, reject_hint),
                (mut entries, contiguous, snapshot),
            )| {
                let (mut index, mut log_term) = (index, log_term);
                if contiguous {
                    // Half of these append to an empty log: they take, and later messages
                    // meet a node with a log, a commit index and a leader.
                    if index % 2 == 0 {
                        (index, log_term) = (0, 0);
                    }
                    for (offset, entry) in (1u64..).zip(entries.iter_mut()) {
                        entry.index = index.saturating_add(offset);
                        entry.term = term;
                    }
                }
                let mut message = Message {
                    from,
                    to,
                    term,
                    index,
                    log_term,
                    commit,
                    reject,
                    reject_hint,
                    entries: entries.into(),
                    snapshot: snapshot.into(),
                    ..Message::default()
                };
                message.set_msg_type(TYPES[kind]);
                message
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn hostile_messages_never_panic_nor_jump_the_term(
        steps in prop::collection::vec((message(), 0..3usize), 1..40),
    ) {
        let mut node = Node::new();
        for (message, ticks) in steps {
            let before = node.ctl.term();
            let forged = message.term > before.saturating_add(TERM_AHEAD_MAX);
            node.ctl.step(message);
            node.drain();
            let after = node.ctl.term();
            prop_assert!(after <= before + TERM_AHEAD_MAX, "term {before} -> {after}");
            if forged {
                prop_assert_eq!(after, before, "a term past the bound was adopted");
            }
            for _ in 0..ticks {
                node.tick();
            }
        }
    }
}

#[test]
fn the_86_byte_heartbeat_of_issue_15_is_refused() {
    let mut node = Node::new();
    let mut heartbeat = Message {
        from: 2,
        to: 1,
        term: u64::MAX,
        ..Message::default()
    };
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    node.ctl.step(heartbeat);
    node.drain();
    assert_eq!(node.ctl.term(), 0);
    // The node goes on ticking (pre-votes to silent peers do not move the term).
    for _ in 0..40 {
        node.tick();
    }
    assert_eq!(node.ctl.term(), 0);
    // An honest heartbeat from a leader at term 3 is taken.
    let mut honest = Message {
        from: 2,
        to: 1,
        term: 3,
        ..Message::default()
    };
    honest.set_msg_type(MessageType::MsgHeartbeat);
    node.ctl.step(honest);
    node.drain();
    assert_eq!((node.ctl.term(), node.ctl.leader_id()), (3, 2));
}

#[test]
fn each_refusal_names_its_reason() {
    let receiver = raft_ingress::Receiver {
        id: 1,
        voters: &VOTERS,
        term: 5,
        last_index: 10,
    };
    let base = |kind: MessageType| {
        let mut message = Message {
            from: 2,
            to: 1,
            term: 5,
            ..Message::default()
        };
        message.set_msg_type(kind);
        message
    };
    let refused = |message: &Message| match raft_ingress::check(receiver, message) {
        Err(ControllerError::InvalidRaftMessage(why)) => why,
        other => panic!("accepted or wrong error: {other:?}"),
    };
    assert_eq!(
        raft_ingress::check(receiver, &base(MessageType::MsgHeartbeat)),
        Ok(())
    );
    let mut from_self = base(MessageType::MsgHeartbeat);
    from_self.from = 1;
    assert!(refused(&from_self).contains("not a peer"));
    assert!(refused(&base(MessageType::MsgHup)).contains("cannot come from the network"));
    assert!(refused(&base(MessageType::MsgTimeoutNow)).contains("cannot come from the network"));
    let mut far = base(MessageType::MsgRequestPreVote);
    far.term = 5 + TERM_AHEAD_MAX + 1;
    assert!(refused(&far).contains("term"));
    let mut zero = base(MessageType::MsgAppend);
    zero.term = 0;
    assert!(refused(&zero).contains("term"));
    let mut commit = base(MessageType::MsgHeartbeat);
    commit.commit = 11;
    assert!(refused(&commit).contains("past the log end"));
    let mut gap = base(MessageType::MsgAppend);
    gap.index = 3;
    gap.log_term = 4;
    gap.entries = vec![Entry {
        index: 5,
        term: 5,
        ..Entry::default()
    }]
    .into();
    assert!(refused(&gap).contains("entry index"));
    let mut after_nothing = base(MessageType::MsgAppend);
    after_nothing.index = 1;
    after_nothing.commit = 1;
    assert!(refused(&after_nothing).contains("append after index 1 of term 0"));
    let mut snapshot = base(MessageType::MsgSnapshot);
    snapshot.mut_snapshot().mut_metadata().index = 20;
    snapshot.mut_snapshot().mut_metadata().term = 5;
    snapshot
        .mut_snapshot()
        .mut_metadata()
        .mut_conf_state()
        .voters = VOTERS.to_vec();
    snapshot.mut_snapshot().data = b"not an image".to_vec().into();
    assert!(refused(&snapshot).contains("snapshot"));
}

/// CI's proptest found it (session 18): a follower forwards a peer's read index to its leader
/// as it came, and raft-rs asserts that a forwarded read index carries no term. An honest voter
/// never sets one (raft-rs sends read indexes termless, as proposals), so one with a term is
/// refused at ingress; the termless one is still taken.
#[test]
fn a_read_index_with_a_term_is_refused_at_a_follower() {
    let mut node = Node::new();
    let mut append = Message {
        from: 2,
        to: 1,
        term: 3,
        ..Message::default()
    };
    append.set_msg_type(MessageType::MsgAppend);
    node.ctl.step(append);
    node.drain();
    assert_eq!((node.ctl.term(), node.ctl.leader_id()), (3, 2));
    let read_index = |term: u64| {
        let mut message = Message {
            from: 2,
            to: 1,
            term,
            entries: vec![Entry::default()].into(),
            ..Message::default()
        };
        message.set_msg_type(MessageType::MsgReadIndex);
        message
    };
    let receiver = raft_ingress::Receiver {
        id: 1,
        voters: &VOTERS,
        term: 3,
        last_index: 0,
    };
    assert!(matches!(
        raft_ingress::check(receiver, &read_index(3)),
        Err(ControllerError::InvalidRaftMessage(why)) if why.contains("read index")
    ));
    assert_eq!(raft_ingress::check(receiver, &read_index(0)), Ok(()));
    node.ctl.step(read_index(3));
    node.ctl.step(read_index(0));
    node.drain();
    assert_eq!((node.ctl.term(), node.ctl.leader_id()), (3, 2));
}
