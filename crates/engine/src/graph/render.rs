//! Drawing the module graph as Mermaid or Graphviz DOT (`weft graph`).

use std::fmt::Write;

use petgraph::visit::EdgeRef;

use super::{LinkKind, ModuleGraph};

fn node_label(g: &ModuleGraph, ix: petgraph::graph::NodeIndex) -> String {
    let n = g.node(ix);
    match &n.name {
        Some(name) => format!("{}. {} ({})", n.id, name, n.module.spec().id),
        None => format!("{}. {}", n.id, n.module.spec().id),
    }
}

fn edge_label(kind: &LinkKind, filter: Option<&str>) -> Option<String> {
    let base = match kind {
        LinkKind::Next => None,
        LinkKind::Route {
            index,
            name,
            fallback,
        } => Some(match (name, fallback) {
            (Some(n), true) => format!("{n} (fallback)"),
            (Some(n), false) => n.clone(),
            (None, true) => "fallback".to_owned(),
            (None, false) => format!("route {}", index + 1),
        }),
        LinkKind::ErrorHandler => Some("on error".to_owned()),
    };
    match (base, filter) {
        (Some(b), Some(f)) => Some(format!("{b}: {f}")),
        (Some(b), None) => Some(b),
        (None, Some(f)) => Some(format!("filter: {f}")),
        (None, None) => None,
    }
}

fn escape(s: &str, quote: char) -> String {
    s.replace('\\', "\\\\").replace(quote, "'")
}

/// The graph as a Mermaid flowchart.
pub fn mermaid(g: &ModuleGraph) -> String {
    let mut out = String::from("flowchart LR\n");
    for ix in g.graph.node_indices() {
        let n = g.node(ix);
        let label = escape(&node_label(g, ix), '"');
        let _ = writeln!(out, "    m{}[\"{}\"]", n.id, label);
    }
    for e in g.graph.edge_references() {
        let from = g.node(e.source()).id;
        let to = g.node(e.target()).id;
        let link = e.weight();
        let arrow = if link.kind == LinkKind::ErrorHandler {
            "-.->"
        } else {
            "-->"
        };
        let filter = link.filter.as_ref().map(|f| f.name().unwrap_or("filter"));
        match edge_label(&link.kind, filter) {
            Some(l) => {
                let _ = writeln!(out, "    m{from} {arrow}|\"{}\"| m{to}", escape(&l, '"'));
            }
            None => {
                let _ = writeln!(out, "    m{from} {arrow} m{to}");
            }
        }
    }
    out
}

/// The graph as Graphviz DOT.
pub fn dot(g: &ModuleGraph, name: &str) -> String {
    let mut out = format!("digraph \"{}\" {{\n    rankdir=LR;\n", escape(name, '"'));
    for ix in g.graph.node_indices() {
        let n = g.node(ix);
        let _ = writeln!(
            out,
            "    m{} [shape=box, label=\"{}\"];",
            n.id,
            escape(&node_label(g, ix), '"')
        );
    }
    for e in g.graph.edge_references() {
        let from = g.node(e.source()).id;
        let to = g.node(e.target()).id;
        let link = e.weight();
        let filter = link.filter.as_ref().map(|f| f.name().unwrap_or("filter"));
        let mut attrs = Vec::new();
        if let Some(l) = edge_label(&link.kind, filter) {
            attrs.push(format!("label=\"{}\"", escape(&l, '"')));
        }
        if link.kind == LinkKind::ErrorHandler {
            attrs.push("style=dashed".to_owned());
        }
        if attrs.is_empty() {
            let _ = writeln!(out, "    m{from} -> m{to};");
        } else {
            let _ = writeln!(out, "    m{from} -> m{to} [{}];", attrs.join(", "));
        }
    }
    out.push_str("}\n");
    out
}
