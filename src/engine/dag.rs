//! The stage graph: deps as edges, a deterministic execution order, and target closures.
use std::collections::HashMap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::config::{did_you_mean, ConfigError, Pipeline, StageId};

/// Stages (by their index in `Pipeline::stages`) and their dependency edges (dep → stage).
#[derive(Debug)]
pub struct Dag {
    graph: DiGraph<usize, ()>,
    /// Topological order; among stages ready at the same time, file order.
    order: Vec<StageId>,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown stage `{name}`{}", help.as_ref().map(|h| format!("\n  help: {h}")).unwrap_or_default())]
pub struct UnknownTarget {
    pub name: String,
    pub help: Option<String>,
}

impl Dag {
    pub fn build(p: &Pipeline) -> Result<Dag, ConfigError> {
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..p.stages.len()).map(|i| graph.add_node(i)).collect();
        let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        // A name -> index map: looking each dep up by a scan made building quadratic.
        let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        for (i, s) in p.stages.iter().enumerate() {
            for (d, dep) in s.deps.iter().enumerate() {
                let Some(&j) = index.get(dep.as_str()) else {
                    return Err(ConfigError::At {
                        file: p.file.clone(),
                        pos: s.dep_pos.get(d).copied().unwrap_or(s.pos),
                        message: format!("unknown dep `{dep}` in [stages.{}]", s.name),
                        help: did_you_mean(dep, &names)
                            .or_else(|| Some(format!("stages: {}", names.join(", ")))),
                    });
                };
                graph.update_edge(nodes[j], nodes[i], ());
            }
        }
        if let Some(cycle) = find_cycle(&graph) {
            let first = &p.stages[cycle[0]];
            let path: Vec<&str> = cycle
                .iter()
                .chain(std::iter::once(&cycle[0]))
                .map(|&i| names[i])
                .collect();
            return Err(ConfigError::At {
                file: p.file.clone(),
                pos: first.dep_pos.first().copied().unwrap_or(first.pos),
                message: format!("dependency cycle: {}", path.join(" -> ")),
                help: Some("remove one of these deps".into()),
            });
        }
        let order = file_ordered_toposort(&graph)
            .into_iter()
            .map(StageId::at)
            .collect();
        Ok(Dag { graph, order })
    }

    /// All stages in execution order.
    pub fn order(&self) -> &[StageId] {
        &self.order
    }

    /// Direct upstream stages of `i`.
    pub fn deps(&self, i: StageId) -> Vec<StageId> {
        let mut v: Vec<StageId> = self
            .graph
            .neighbors_directed(NodeIndex::new(i.index()), Direction::Incoming)
            .map(|n| StageId::at(n.index()))
            .collect();
        v.sort_unstable();
        v
    }

    /// The targets and everything upstream of them, in execution order.
    pub fn closure(&self, targets: &[StageId]) -> Vec<StageId> {
        let mut keep = vec![false; self.order.len()];
        let mut stack: Vec<StageId> = targets.to_vec();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut keep[i.index()], true) {
                stack.extend(self.deps(i));
            }
        }
        self.order
            .iter()
            .copied()
            .filter(|i| keep[i.index()])
            .collect()
    }

    /// Resolves target names; no names means every stage.
    pub fn targets(&self, p: &Pipeline, names: &[String]) -> Result<Vec<StageId>, UnknownTarget> {
        if names.is_empty() {
            return Ok(self.order.clone());
        }
        let known: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        names
            .iter()
            .map(|n| {
                p.index(n).ok_or_else(|| UnknownTarget {
                    name: n.clone(),
                    help: did_you_mean(n, &known),
                })
            })
            .collect()
    }
}

/// A cycle as stage indices in dependency order, if the graph has one.
fn find_cycle(graph: &DiGraph<usize, ()>) -> Option<Vec<usize>> {
    let mut sccs: Vec<Vec<NodeIndex>> = tarjan_scc(graph)
        .into_iter()
        .filter(|c| c.len() > 1 || graph.contains_edge(c[0], c[0]))
        .collect();
    sccs.sort_by_key(|c| c.iter().map(|n| n.index()).min());
    let scc = sccs.into_iter().next()?;
    let start = *scc.iter().min()?;
    // Walk edges inside the component from `start` until we come back to it (DFS with a path).
    let mut path = vec![start];
    let mut seen = vec![start];
    loop {
        let here = *path.last()?;
        let mut next: Vec<NodeIndex> = graph.neighbors(here).filter(|n| scc.contains(n)).collect();
        next.sort();
        if next.contains(&start) {
            return Some(path.iter().map(|n| n.index()).collect());
        }
        match next.into_iter().find(|n| !seen.contains(n)) {
            Some(n) => {
                seen.push(n);
                path.push(n);
            }
            None => {
                path.pop();
            }
        }
    }
}

fn file_ordered_toposort(graph: &DiGraph<usize, ()>) -> Vec<usize> {
    let mut indegree: HashMap<NodeIndex, usize> = graph
        .node_indices()
        .map(|n| (n, graph.neighbors_directed(n, Direction::Incoming).count()))
        .collect();
    let mut ready: std::collections::BTreeSet<usize> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| n.index())
        .collect();
    let mut order = Vec::with_capacity(graph.node_count());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for n in graph.neighbors(NodeIndex::new(i)) {
            let d = indegree.get_mut(&n).expect("node");
            *d -= 1;
            if *d == 0 {
                ready.insert(n.index());
            }
        }
    }
    order
}

/// The DAG as text, Graphviz dot or Mermaid.
pub fn render(p: &Pipeline, dag: &Dag, format: &str) -> String {
    match format {
        "dot" => render_dot(p, dag),
        "mermaid" => render_mermaid(p, dag),
        _ => render_text(p, dag),
    }
}

/// Every edge as (dependency, dependent), in topological order of the dependent.
fn edges(dag: &Dag) -> impl Iterator<Item = (StageId, StageId)> + '_ {
    dag.order()
        .iter()
        .flat_map(move |&i| dag.deps(i).into_iter().map(move |d| (d, i)))
}

fn render_dot(p: &Pipeline, dag: &Dag) -> String {
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", p.name);
    for &i in dag.order() {
        let s = p.decl(i);
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\\n({})\"];\n",
            s.name, s.name, s.kind
        ));
    }
    for (d, i) in edges(dag) {
        out.push_str(&format!(
            "  \"{}\" -> \"{}\";\n",
            p.decl(d).name,
            p.decl(i).name
        ));
    }
    out.push_str("}\n");
    out
}

fn render_mermaid(p: &Pipeline, dag: &Dag) -> String {
    let mut out = String::from("graph LR\n");
    for &i in dag.order() {
        let s = p.decl(i);
        out.push_str(&format!(
            "  {}[\"{} ({})\"]\n",
            mermaid_id(&s.name),
            s.name,
            s.kind
        ));
    }
    for (d, i) in edges(dag) {
        out.push_str(&format!(
            "  {} --> {}\n",
            mermaid_id(&p.decl(d).name),
            mermaid_id(&p.decl(i).name)
        ));
    }
    out
}

fn render_text(p: &Pipeline, dag: &Dag) -> String {
    let mut out = String::new();
    for &i in dag.order() {
        let s = p.decl(i);
        let deps: Vec<&str> = dag
            .deps(i)
            .iter()
            .map(|&d| p.decl(d).name.as_str())
            .collect();
        let each = s
            .foreach
            .as_ref()
            .map(|f| format!(" [per item of {f}]"))
            .unwrap_or_default();
        if deps.is_empty() {
            out.push_str(&format!("{} ({}){each}\n", s.name, s.kind));
        } else {
            out.push_str(&format!(
                "{} ({}){each} <- {}\n",
                s.name,
                s.kind,
                deps.join(", ")
            ));
        }
    }
    out
}

fn mermaid_id(name: &str) -> String {
    name.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn pipeline(text: &str) -> Pipeline {
        crate::config::parse(
            std::path::Path::new("p.toml"),
            text,
            &Registry::default(),
            &[],
        )
        .unwrap()
    }

    const CHAIN: &str = "[stages.c]\nkind = \"cmd\"\nrun = \"true\"\ndeps = [\"b\"]\n[stages.a]\nkind = \"cmd\"\nrun = \"true\"\n[stages.b]\nkind = \"cmd\"\nrun = \"true\"\ndeps = [\"a\"]\n[stages.x]\nkind = \"cmd\"\nrun = \"true\"\n";

    #[test]
    fn order_is_topological_with_file_order_ties() {
        let p = pipeline(CHAIN);
        let dag = Dag::build(&p).unwrap();
        let names: Vec<&str> = dag
            .order()
            .iter()
            .map(|&i| p.decl(i).name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c", "x"]);
        let closure: Vec<&str> = dag
            .closure(&[p.index("b").unwrap()])
            .iter()
            .map(|&i| p.decl(i).name.as_str())
            .collect();
        assert_eq!(closure, ["a", "b"]);
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let p = pipeline("[stages.a]\nkind = \"cmd\"\nrun = \"true\"\ndeps = [\"a\"]\n");
        let err = Dag::build(&p).unwrap_err();
        assert!(
            err.to_string().contains("dependency cycle: a -> a"),
            "{err}"
        );
    }
}
