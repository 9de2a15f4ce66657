//! Dependency cycles between operations: G0 (write-write cycles) and G1c (cycles with at least
//! one write-read edge), as Jepsen's kafka checker builds them for Elle.
//!
//! Edges (between committed send/poll/txn operations, never self-edges):
//! - ww: T1 sent v1 to k, T2 sent v2 to k, v1 immediately precedes v2 in k's log order (only with
//!   `ww_deps`, as Jepsen's `--ww-deps`);
//! - wr: T1 sent v to k and T2 (ok) polled v from k.
//!
//! Cycles are found per strongly connected component (Tarjan, iterative so a million operations
//! cannot overflow the stack), then one concrete cycle per component is extracted by BFS.

use std::collections::{BTreeMap, VecDeque};

use crate::queue::{Anomaly, AnomalyClass, GraphInput, CASES_PER_CLASS_MAX};

/// Edge kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dep {
    /// Write-write: log order.
    Ww,
    /// Write-read: a poll saw a send.
    Wr,
}

/// An edge with the key that explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    /// Source node.
    from: u32,
    /// Target node.
    to: u32,
    /// ww or wr.
    dep: Dep,
    /// The key on which the dependency arises.
    key: u32,
}

/// Adjacency in compressed form.
struct Graph {
    /// `edges[start[n]..start[n + 1]]` leave node n.
    start: Vec<usize>,
    /// Edges sorted by source.
    edges: Vec<Edge>,
}

impl Graph {
    fn new(nodes: usize, mut edges: Vec<Edge>) -> Graph {
        edges.sort_unstable();
        edges.dedup_by(|a, b| a.from == b.from && a.to == b.to && a.dep == b.dep);
        let mut start = vec![0usize; nodes + 1];
        for e in &edges {
            start[e.from as usize + 1] += 1;
        }
        for i in 0..nodes {
            start[i + 1] += start[i];
        }
        assert_eq!(start[nodes], edges.len());
        Graph { start, edges }
    }

    fn out(&self, n: u32) -> &[Edge] {
        &self.edges[self.start[n as usize]..self.start[n as usize + 1]]
    }

    /// Strongly connected components with more than one node (self-edges never exist).
    fn components(&self) -> Vec<Vec<u32>> {
        let n = self.start.len() - 1;
        const UNSEEN: u32 = u32::MAX;
        let mut index = vec![UNSEEN; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<u32> = Vec::new();
        let mut out = Vec::new();
        let mut counter = 0u32;
        // Call stack frames: (node, next edge offset).
        let mut frames: Vec<(u32, usize)> = Vec::new();
        for root in 0..n as u32 {
            if index[root as usize] != UNSEEN || self.out(root).is_empty() {
                continue;
            }
            frames.push((root, 0));
            index[root as usize] = counter;
            low[root as usize] = counter;
            counter += 1;
            stack.push(root);
            on_stack[root as usize] = true;
            while let Some(&mut (v, ref mut next)) = frames.last_mut() {
                let edges = self.out(v);
                if *next < edges.len() {
                    let w = edges[*next].to;
                    *next += 1;
                    if index[w as usize] == UNSEEN {
                        index[w as usize] = counter;
                        low[w as usize] = counter;
                        counter += 1;
                        stack.push(w);
                        on_stack[w as usize] = true;
                        frames.push((w, 0));
                    } else if on_stack[w as usize] {
                        low[v as usize] = low[v as usize].min(index[w as usize]);
                    }
                    continue;
                }
                frames.pop();
                if let Some(&(parent, _)) = frames.last() {
                    low[parent as usize] = low[parent as usize].min(low[v as usize]);
                }
                if low[v as usize] == index[v as usize] {
                    let mut component = Vec::new();
                    loop {
                        let w = stack.pop().expect("v is on the stack");
                        on_stack[w as usize] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        out.push(component);
                    }
                }
            }
        }
        assert!(stack.is_empty());
        out
    }

    /// A shortest path from `from` to `to` staying inside `member`, as edges.
    fn path(&self, from: u32, to: u32, member: &[bool]) -> Option<Vec<Edge>> {
        let mut parent: BTreeMap<u32, Edge> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        let mut seen = BTreeMap::from([(from, ())]);
        while let Some(v) = queue.pop_front() {
            if v == to {
                let mut path = Vec::new();
                let mut at = to;
                while at != from {
                    let e = parent[&at];
                    path.push(e);
                    at = e.from;
                }
                path.reverse();
                return Some(path);
            }
            for e in self.out(v) {
                if member[e.to as usize] && seen.insert(e.to, ()).is_none() {
                    parent.insert(e.to, *e);
                    queue.push_back(e.to);
                }
            }
        }
        None
    }
}

/// Finds G0 and G1c cycles and adds them to `found` (class -> (count, cases)).
pub(crate) fn cycles(
    input: &GraphInput<'_>,
    ww_deps: bool,
    found: &mut BTreeMap<AnomalyClass, (u64, Vec<Anomaly>)>,
) {
    if !ww_deps && !input.mixed {
        // Without ww edges, a cycle needs an operation that both reads and writes.
        return;
    }
    let n = input.nodes.len();
    let ok = |p: u32| input.nodes[p as usize].1;
    let mut ww = Vec::new();
    if ww_deps {
        for (key, (order, writer)) in input.orders.iter().enumerate() {
            for pair in order.windows(2) {
                if let (Some(&a), Some(&b)) = (writer.get(&pair[0]), writer.get(&pair[1])) {
                    if a != b && ok(a) && ok(b) {
                        ww.push(Edge {
                            from: a,
                            to: b,
                            dep: Dep::Ww,
                            key: key as u32,
                        });
                    }
                }
            }
        }
    }
    let mut all = ww.clone();
    for &(w, r, key) in &input.wr {
        if r != w && ok(w) && ok(r) {
            all.push(Edge {
                from: w,
                to: r,
                dep: Dep::Wr,
                key,
            });
        }
    }
    if ww_deps {
        report(input, &Graph::new(n, ww), Dep::Ww, AnomalyClass::G0, found);
    }
    report(
        input,
        &Graph::new(n, all),
        Dep::Wr,
        AnomalyClass::G1c,
        found,
    );
}

/// For each component, one cycle through an edge of kind `through`.
fn report(
    input: &GraphInput<'_>,
    graph: &Graph,
    through: Dep,
    class: AnomalyClass,
    found: &mut BTreeMap<AnomalyClass, (u64, Vec<Anomaly>)>,
) {
    let mut member = vec![false; input.nodes.len()];
    let mut components = graph.components();
    for c in &mut components {
        c.sort_unstable();
    }
    components.sort();
    for component in components {
        component.iter().for_each(|&v| member[v as usize] = true);
        let entry = component
            .iter()
            .flat_map(|&v| graph.out(v))
            .find(|e| e.dep == through && member[e.to as usize]);
        if let Some(first) = entry {
            let back = graph.path(first.to, first.from, &member);
            let back = back.expect("a component is strongly connected");
            let mut cycle = vec![*first];
            cycle.extend(back);
            let slot = found.entry(class).or_default();
            slot.0 += 1;
            if slot.1.len() < CASES_PER_CLASS_MAX {
                slot.1.push(describe(input, &cycle));
            }
        }
        component.iter().for_each(|&v| member[v as usize] = false);
    }
}

fn describe(input: &GraphInput<'_>, cycle: &[Edge]) -> Anomaly {
    assert!(
        cycle.len() >= 2,
        "a cycle between distinct operations has two edges"
    );
    assert_eq!(cycle[0].from, cycle[cycle.len() - 1].to);
    let op = |n: u32| input.nodes[n as usize].0;
    let mut detail = format!("op {}", op(cycle[0].from));
    for e in cycle {
        let dep = match e.dep {
            Dep::Ww => "ww",
            Dep::Wr => "wr",
        };
        detail.push_str(&format!(
            " -{dep} {}-> op {}",
            input.key_names[e.key as usize],
            op(e.to)
        ));
    }
    Anomaly {
        key: None,
        values: Vec::new(),
        ops: cycle.iter().map(|e| op(e.from)).collect(),
        detail,
    }
}
