//! Arbitrary bytes on the controller listener: whatever a frame holds, decoding it and stepping a
//! controller with the raft message it may carry never panics, and never moves the term past
//! `raft_ingress::TERM_AHEAD_MAX` (a forged term far ahead is dropped).
#![allow(clippy::unwrap_used)]

use broker::control::wire::{self, ControlMessage};
use controller::raft_ingress::TERM_AHEAD_MAX;
use controller::raft_prelude::{Message, MessageType};
use controller::{Controller, ControllerConfig, Effect, RaftStore};
use proptest::prelude::*;

const VOTERS: [u64; 3] = [1, 2, 3];

fn controller() -> Controller {
    let config = ControllerConfig::new(1, VOTERS.to_vec());
    Controller::new(config, RaftStore::bootstrap(&VOTERS), 0)
}

/// Steps `message` and carries out persists; checks the term bound and the invariants.
fn step(ctl: &mut Controller, message: Message) -> Result<(), TestCaseError> {
    let before = ctl.term();
    ctl.step(message);
    loop {
        let effects = ctl.take_effects();
        if effects.is_empty() {
            break;
        }
        for effect in effects {
            if let Effect::Persist(batch) = effect {
                ctl.persist_complete(batch.id);
            }
        }
    }
    prop_assert!(ctl.term() <= before + TERM_AHEAD_MAX);
    prop_assert!(ctl.check_invariants().is_ok());
    Ok(())
}

/// A real raft message's bytes with some bytes flipped: mostly still decodable, often hostile.
fn mutated_raft_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u64>(),
        0..5u64,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    )
        .prop_map(|(term, from, flips)| {
            let mut message = Message::default();
            message.set_msg_type(MessageType::MsgHeartbeat);
            message.from = from;
            message.to = 1;
            message.term = term;
            message.commit = term % 7;
            let mut bytes = wire::raft_to_bytes(&message).unwrap();
            for (index, byte) in flips {
                let at = index.index(bytes.len());
                bytes[at] = byte;
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_never_panic(payload in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut ctl = controller();
        if let Ok(ControlMessage::Raft(bytes)) = wire::decode(&payload) {
            if let Ok(message) = wire::raft_from_bytes(&bytes) {
                step(&mut ctl, message)?;
            }
        }
    }

    #[test]
    fn arbitrary_raft_bytes_never_panic(
        payloads in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..128),
                mutated_raft_bytes(),
            ],
            1..16,
        ),
    ) {
        let mut ctl = controller();
        for payload in payloads {
            let framed = wire::encode(&ControlMessage::Raft(payload)).unwrap();
            let Ok(ControlMessage::Raft(bytes)) = wire::decode(&framed) else {
                panic!("a raft frame decodes as one");
            };
            if let Ok(message) = wire::raft_from_bytes(&bytes) {
                step(&mut ctl, message)?;
            }
        }
    }
}
