//! The linearizability checker on hand-made histories: verdicts, indeterminate operations,
//! budgets, witnesses, and the adapters from rill histories.

mod common;

use jepsen::history::History;
use jepsen::linear::{
    check_keys, check_operations, check_registers, shrink, AppendLog, Budget, CasRegister,
    LogInput, LogOutput, Operation, Register, RegisterInput as I, RegisterOutput as O, Verdict,
};

fn op(id: u64, call: u64, ret: Option<u64>, input: I, output: Option<O>) -> Operation<I, O> {
    Operation {
        id,
        process: id,
        call,
        ret,
        input,
        output,
    }
}

fn budget() -> Budget {
    Budget::new(10, 100_000)
}

#[test]
fn sequential_read_of_a_stale_value_is_not_linearizable() {
    let ops = vec![
        op(0, 0, Some(1), I::Write(1), Some(O::Done)),
        op(1, 2, Some(3), I::Write(2), Some(O::Done)),
        op(2, 4, Some(5), I::Read, Some(O::Read(Some(1)))),
    ];
    assert_eq!(
        check_operations(&Register::default(), &ops, &budget()),
        Verdict::NotLinearizable
    );
    // Overlap the read with the second write and it becomes linearizable.
    let mut concurrent = ops.clone();
    concurrent[2].call = 2;
    assert_eq!(
        check_operations(&Register::default(), &concurrent, &budget()),
        Verdict::Linearizable
    );
}

#[test]
fn indeterminate_write_may_or_may_not_happen() {
    let write = op(0, 0, None, I::Write(1), None);
    let read = |id, v| op(id, 10 + id, Some(11 + id), I::Read, Some(O::Read(v)));
    for seen in [None, Some(1)] {
        let ops = vec![write.clone(), read(1, seen)];
        assert_eq!(
            check_operations(&Register::default(), &ops, &budget()),
            Verdict::Linearizable
        );
    }
    // But it cannot un-happen: 1 then nothing is impossible.
    let ops = vec![write, read(1, Some(1)), read(3, None)];
    assert_eq!(
        check_operations(&Register::default(), &ops, &budget()),
        Verdict::NotLinearizable
    );
}

#[test]
fn cas_register_semantics() {
    let ops = vec![
        op(0, 0, Some(1), I::Write(1), Some(O::Done)),
        op(1, 2, Some(3), I::Cas(1, 2), Some(O::Done)),
        op(2, 4, Some(5), I::Read, Some(O::Read(Some(2)))),
    ];
    assert_eq!(
        check_operations(&CasRegister::default(), &ops, &budget()),
        Verdict::Linearizable
    );
    let mut bad = ops.clone();
    bad[1].input = I::Cas(7, 2);
    assert_eq!(
        check_operations(&CasRegister::default(), &bad, &budget()),
        Verdict::NotLinearizable
    );
}

#[test]
fn append_log_semantics() {
    let ops: Vec<Operation<LogInput, LogOutput>> = vec![
        Operation {
            id: 0,
            process: 0,
            call: 0,
            ret: Some(3),
            input: LogInput::Append(5),
            output: Some(LogOutput::Appended(1)),
        },
        Operation {
            id: 1,
            process: 1,
            call: 1,
            ret: Some(2),
            input: LogInput::Append(6),
            output: Some(LogOutput::Appended(0)),
        },
        Operation {
            id: 2,
            process: 2,
            call: 4,
            ret: Some(5),
            input: LogInput::Read(vec![(0, 6), (1, 5)]),
            output: Some(LogOutput::Read),
        },
    ];
    assert_eq!(
        check_operations(&AppendLog::for_operations(&ops), &ops, &budget()),
        Verdict::Linearizable
    );
    let mut bad = ops.clone();
    bad[2].input = LogInput::Read(vec![(0, 5)]);
    assert_eq!(
        check_operations(&AppendLog::for_operations(&bad), &bad, &budget()),
        Verdict::NotLinearizable
    );
    // Two acknowledged appends at one offset cannot both have happened.
    let mut clash = ops.clone();
    clash[0].output = Some(LogOutput::Appended(0));
    clash.truncate(2);
    assert_eq!(
        check_operations(&AppendLog::for_operations(&clash), &clash, &budget()),
        Verdict::NotLinearizable
    );
    // A read that finished before the append began cannot see it.
    let early: Vec<Operation<LogInput, LogOutput>> = vec![
        Operation {
            id: 0,
            process: 0,
            call: 0,
            ret: Some(1),
            input: LogInput::Read(vec![(0, 6)]),
            output: Some(LogOutput::Read),
        },
        Operation {
            id: 1,
            process: 1,
            call: 2,
            ret: Some(3),
            input: LogInput::Append(6),
            output: Some(LogOutput::Appended(0)),
        },
    ];
    assert_eq!(
        check_operations(&AppendLog::for_operations(&early), &early, &budget()),
        Verdict::NotLinearizable
    );
}

#[test]
fn budget_answers_unknown() {
    // Many concurrent writes and a read nobody wrote: exhaustive search, tiny budget.
    let mut ops: Vec<_> = (0..12)
        .map(|i| op(i, i, Some(100 + i), I::Write(i as i64), Some(O::Done)))
        .collect();
    ops.push(op(99, 200, Some(201), I::Read, Some(O::Read(Some(-1)))));
    let tight = Budget {
        states_max: 50,
        ..budget()
    };
    assert!(matches!(
        check_operations(&Register::default(), &ops, &tight),
        Verdict::Unknown(_)
    ));
    assert_eq!(
        check_operations(&Register::default(), &ops, &budget()),
        Verdict::NotLinearizable
    );
}

#[test]
fn shrink_finds_the_small_core() {
    let writes: Vec<_> = (0..20)
        .map(|i| {
            op(
                i,
                10 * i,
                Some(10 * i + 5),
                I::Write(i as i64),
                Some(O::Done),
            )
        })
        .collect();
    // A read of the initial (empty) register after all writes: any one write explains the error.
    let mut ops = writes.clone();
    ops.push(op(100, 300, Some(301), I::Read, Some(O::Read(None))));
    assert_eq!(
        check_operations(&Register::default(), &ops, &budget()),
        Verdict::NotLinearizable
    );
    let witness = shrink(&Register::default(), &ops, &budget());
    let ids: Vec<u64> = witness.iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&100), "{ids:?}");
    assert_eq!(
        check_operations(&Register::default(), &witness, &budget()),
        Verdict::NotLinearizable
    );
    // A read of a value never written: the read alone is the witness.
    let mut ops = writes;
    ops.push(op(100, 300, Some(301), I::Read, Some(O::Read(Some(77)))));
    let witness = shrink(&Register::default(), &ops, &budget());
    assert_eq!(witness.iter().map(|o| o.id).collect::<Vec<_>>(), vec![100]);
}

#[test]
fn keys_are_checked_independently_and_in_order() {
    let good = vec![op(0, 0, Some(1), I::Write(1), Some(O::Done))];
    let bad = vec![op(1, 0, Some(1), I::Read, Some(O::Read(Some(9))))];
    let verdicts = check_keys(
        vec![
            ("a".to_string(), Register::default(), good.clone()),
            ("b".to_string(), Register::default(), bad),
            ("c".to_string(), Register::default(), good),
        ],
        &budget(),
    );
    let names: Vec<_> = verdicts
        .iter()
        .map(|v| (v.key.as_str(), v.verdict.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("a", Verdict::Linearizable),
            ("b", Verdict::NotLinearizable),
            ("c", Verdict::Linearizable)
        ]
    );
    assert_eq!(verdicts[1].witness.len(), 1);
}

#[test]
fn kv_workload_adapter() {
    let text = common::jsonl(&[
        ("invoke", 0, "txn", "[[\"write\",\"x\",1]]"),
        ("ok", 0, "txn", "[[\"write\",\"x\",1]]"),
        ("invoke", 1, "txn", "[[\"cas\",\"x\",[1,2]]]"),
        ("ok", 1, "txn", "[[\"cas\",\"x\",[1,2]]]"),
        ("invoke", 2, "txn", "[[\"cas\",\"x\",[5,6]]]"),
        ("fail", 2, "txn", "[[\"cas\",\"x\",[5,6]]]"),
        ("invoke", 2, "txn", "[[\"read\",\"x\",null]]"),
        ("ok", 2, "txn", "[[\"read\",\"x\",2]]"),
        ("invoke", 3, "txn", "[[\"read\",\"y\",null]]"),
        ("ok", 3, "txn", "[[\"read\",\"y\",null]]"),
    ]);
    let history = History::parse_str(&text).expect("valid");
    let report = check_registers(&history, &budget());
    assert_eq!(
        report.verdict,
        Verdict::Linearizable,
        "{:?}",
        report.failures
    );
    assert_eq!((report.keys, report.operations), (2, 4));
    let stale = text.replace("[[\"read\",\"x\",2]]", "[[\"read\",\"x\",1]]");
    let report = check_registers(&History::parse_str(&stale).expect("valid"), &budget());
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    assert_eq!(report.failures[0]["key"], "x");
}
