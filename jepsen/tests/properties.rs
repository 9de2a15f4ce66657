//! Property tests: no false positives on histories generated from sequential models, and
//! agreement with stateright's `LinearizabilityTester` on random small register histories.

use jepsen::gen::{queue_history, register_history, QueueShape};
use jepsen::history::History;
use jepsen::linear::{
    check_logs, check_operations, check_registers, Budget, Operation, Register, RegisterInput,
    RegisterOutput, Verdict,
};
use jepsen::queue::{check, QueueOptions};
use proptest::prelude::*;
use stateright::semantics::register::{Register as SrRegister, RegisterOp, RegisterRet};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

/// Our register operations.
type RegOp = Operation<RegisterInput, RegisterOutput>;
/// stateright's tester over the same register.
type Tester = LinearizabilityTester<u64, SrRegister<i64>>;

fn budget() -> Budget {
    Budget::new(30, 1_000_000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_queue_histories_are_valid(
        seed in any::<u64>(),
        operations in 1u64..300,
        processes in 1u64..6,
        keys in 1u64..4,
        info_percent in 0u64..20,
        fail_percent in 0u64..20,
    ) {
        let shape = QueueShape {
            operations, processes, keys, info_percent, fail_percent, poll_batch_max: 4,
        };
        let history = queue_history(seed, &shape);
        for options in [QueueOptions::default(), QueueOptions { subscribe: true, ww_deps: true, ..QueueOptions::default() }] {
            let report = check(&history, &options);
            prop_assert!(report.valid, "{:?}", report.anomalies);
            prop_assert!(report.anomalies.is_empty(), "{:?}", report.anomalies);
        }
        let logs = check_logs(&history, &budget());
        prop_assert_eq!(logs.verdict, Verdict::Linearizable, "{:?}", logs.failures);
        // And the JSON Lines form parses back to the same verdict.
        let mut text = Vec::new();
        history.write_jsonl(&mut text).expect("in memory");
        let parsed = History::parse_jsonl(text.as_slice()).expect("recorded histories parse");
        prop_assert_eq!(check(&parsed, &QueueOptions::default()), check(&history, &QueueOptions::default()));
    }

    #[test]
    fn generated_register_histories_are_linearizable(
        seed in any::<u64>(),
        operations in 1u64..200,
        processes in 1u64..6,
        keys in 1u64..4,
    ) {
        let history = register_history(seed, operations, processes, keys);
        let report = check_registers(&history, &budget());
        prop_assert_eq!(report.verdict, Verdict::Linearizable, "{:?}", report.failures);
    }

    #[test]
    fn agrees_with_stateright(
        actions in prop::collection::vec((0u64..3, 0u8..3, 0i64..3), 0..10),
    ) {
        let (ops, tester) = random_register_history(&actions);
        let ours = check_operations(&Register(Some(0)), &ops, &budget());
        prop_assert!(ours != Verdict::Unknown(String::new()));
        let theirs = tester.is_consistent();
        prop_assert_eq!(ours == Verdict::Linearizable, theirs, "{:?}", ops);
    }
}

/// Interprets actions `(process, kind, value)`: a process with an operation in flight returns
/// it (a read returns `value`); otherwise it invokes a read (kind 0) or a write of `value`.
/// Operations still in flight at the end stay indeterminate.
fn random_register_history(actions: &[(u64, u8, i64)]) -> (Vec<RegOp>, Tester) {
    let mut tester = LinearizabilityTester::new(SrRegister(0i64));
    let mut ops: Vec<Operation<RegisterInput, RegisterOutput>> = Vec::new();
    let mut in_flight: Vec<Option<usize>> = vec![None; 3];
    for (time, &(p, kind, value)) in actions.iter().enumerate() {
        let time = time as u64;
        match in_flight[p as usize].take() {
            Some(i) => {
                let op = &mut ops[i];
                op.ret = Some(time);
                let ret = match op.input {
                    RegisterInput::Read => {
                        op.output = Some(RegisterOutput::Read(Some(value)));
                        RegisterRet::ReadOk(value)
                    }
                    _ => {
                        op.output = Some(RegisterOutput::Done);
                        RegisterRet::WriteOk
                    }
                };
                tester.on_return(p, ret).expect("one invoke in flight");
            }
            None => {
                let (input, sr) = if kind == 0 {
                    (RegisterInput::Read, RegisterOp::Read)
                } else {
                    (RegisterInput::Write(value), RegisterOp::Write(value))
                };
                tester.on_invoke(p, sr).expect("no invoke in flight");
                in_flight[p as usize] = Some(ops.len());
                ops.push(Operation {
                    id: time,
                    process: p,
                    call: time,
                    ret: None,
                    input,
                    output: None,
                });
            }
        }
    }
    (ops, tester)
}

/// The agreement test above can fail: over a fixed set of seeds, both verdicts occur, and the
/// two checkers agree on every one.
#[test]
fn agreement_sees_both_verdicts() {
    let mut rng = jepsen::gen::Rng::new(7);
    let (mut yes, mut no) = (0, 0);
    for _ in 0..400 {
        let n = rng.below(10) as usize;
        let actions: Vec<(u64, u8, i64)> = (0..n)
            .map(|_| (rng.below(3), rng.below(3) as u8, rng.below(3) as i64))
            .collect();
        let (ops, tester) = random_register_history(&actions);
        let ours = check_operations(&Register(Some(0)), &ops, &budget()) == Verdict::Linearizable;
        assert_eq!(ours, tester.is_consistent(), "{ops:?}");
        if ours {
            yes += 1
        } else {
            no += 1
        }
    }
    assert!(yes > 20 && no > 20, "linearizable {yes}, not {no}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Hiding one acknowledged record from every poll is caught as a lost write.
    #[test]
    fn hiding_a_record_is_a_lost_write(seed in any::<u64>(), pick in any::<u64>()) {
        let shape = QueueShape { operations: 150, info_percent: 0, ..QueueShape::default() };
        let history = queue_history(seed, &shape);
        let mut text = Vec::new();
        history.write_jsonl(&mut text).expect("in memory");
        let mut events: Vec<serde_json::Value> = String::from_utf8(text)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        // Acknowledged (key, offset, value) triples, and each key's highest offset.
        let mut acked = Vec::new();
        let mut top = std::collections::BTreeMap::new();
        for e in events.iter().filter(|e| e["type"] == "ok" && e["f"] == "send") {
            for mop in e["value"].as_array().expect("mops") {
                let (k, o, v) = (mop[1].as_str().expect("key").to_string(), mop[2][0].as_u64().expect("offset"), mop[2][1].as_i64().expect("value"));
                let t = top.entry(k.clone()).or_insert(0);
                *t = (*t).max(o);
                acked.push((k, o, v));
            }
        }
        acked.retain(|(k, o, _)| *o < top[k]);
        prop_assume!(!acked.is_empty());
        let (key, _, hidden) = acked[(pick % acked.len() as u64) as usize].clone();
        for e in events.iter_mut().filter(|e| e["type"] == "ok" && e["f"] == "poll") {
            for mop in e["value"].as_array_mut().expect("mops") {
                if let Some(pairs) = mop[1].get_mut(key.as_str()).and_then(|p| p.as_array_mut()) {
                    pairs.retain(|pair| pair[1].as_i64() != Some(hidden));
                }
            }
        }
        let text: String = events.iter().map(|e| format!("{e}\n")).collect();
        let mutated = History::parse_str(&text).expect("still well formed");
        let report = check(&mutated, &QueueOptions::default());
        prop_assert!(!report.valid);
        let lost = report.cases(jepsen::queue::AnomalyClass::LostWrite);
        prop_assert!(lost.iter().any(|a| a.values[0] == hidden), "{:?}", report.anomalies.keys());
    }
}
