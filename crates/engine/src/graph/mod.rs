//! The module graph: nodes are modules, edges are links (next, router routes, error
//! handlers), each with an optional filter. Built by [`crate::validate`], walked by
//! [`crate::exec`], drawn by [`render`].

pub mod render;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use serde_json::{Map, Value};

use crate::filter::Filter;
use crate::module::Module;
use crate::scenario::yaml::Pos;
use crate::scenario::Directive;
use crate::spec::FieldType;
use crate::template::ValueTemplate;

/// How the executor treats a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The first module: turns the trigger payload into bundles.
    Trigger,
    /// An ordinary module: one operation per input bundle.
    Module,
    /// `flow.router`: passes each bundle to its routes, in order.
    Router,
    /// An aggregator collecting the bundles that descend from `source`'s outputs.
    Aggregator {
        /// The module whose bundles it collects.
        source: NodeIndex,
        /// Array or text aggregation.
        text: bool,
    },
}

/// One mapped input field, compiled.
#[derive(Clone, Debug)]
pub struct MappedField {
    /// Field name.
    pub name: String,
    /// The template tree.
    pub template: ValueTemplate,
    /// Declared type to coerce to.
    pub ty: FieldType,
}

/// What happens when the module fails.
#[derive(Clone, Debug)]
pub struct ErrorPolicy {
    /// The directive.
    pub directive: Directive,
    /// Break: automatic retries.
    pub retries: u32,
    /// Break: time between retries.
    pub interval: Duration,
    /// Resume: the stand-in output.
    pub output: Option<ValueTemplate>,
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        ErrorPolicy {
            directive: Directive::Rollback,
            retries: 0,
            interval: Duration::from_secs(60),
            output: None,
        }
    }
}

/// A module in the graph.
pub struct Node {
    /// Id from the scenario.
    pub id: u32,
    /// The implementation.
    pub module: &'static dyn Module,
    /// Label from the scenario.
    pub name: Option<String>,
    /// How the executor treats it.
    pub role: Role,
    /// Connection handle for app modules.
    pub connection: Option<Arc<dyn Any + Send + Sync>>,
    /// Static parameters, already coerced.
    pub params: Map<String, Value>,
    /// Mapped inputs.
    pub inputs: Vec<MappedField>,
    /// Error handling.
    pub on_error: ErrorPolicy,
    /// Where the module is declared.
    pub pos: Pos,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("module", &self.module.spec().id)
            .field("role", &self.role)
            .finish()
    }
}

/// What kind of link an edge is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// The next module of a flow.
    Next,
    /// A router's route.
    Route {
        /// Position among the router's routes.
        index: usize,
        /// Label.
        name: Option<String>,
        /// Runs only when no other route passed.
        fallback: bool,
    },
    /// Into the first module of an error-handler flow.
    ErrorHandler,
}

/// An edge: the link kind and its filter.
#[derive(Debug)]
pub struct Link {
    /// Next, route or error handler.
    pub kind: LinkKind,
    /// Bundles pass only if the filter does.
    pub filter: Option<Filter>,
}

/// The scenario's modules and links, with each node's outgoing links in declared order.
#[derive(Debug, Default)]
pub struct ModuleGraph {
    /// The petgraph graph.
    pub graph: DiGraph<Node, Link>,
    children: Vec<Vec<EdgeIndex>>,
    handler: Vec<Option<EdgeIndex>>,
    aggregators: Vec<Vec<NodeIndex>>,
    by_id: std::collections::HashMap<u32, NodeIndex>,
}

impl ModuleGraph {
    /// Adds a module.
    pub fn add_node(&mut self, node: Node) -> NodeIndex {
        let id = node.id;
        let ix = self.graph.add_node(node);
        self.children.push(Vec::new());
        self.handler.push(None);
        self.aggregators.push(Vec::new());
        self.by_id.insert(id, ix);
        ix
    }

    /// Links `from` to `to`; links keep the order in which they are added.
    pub fn add_link(&mut self, from: NodeIndex, to: NodeIndex, link: Link) -> EdgeIndex {
        let is_handler = link.kind == LinkKind::ErrorHandler;
        let e = self.graph.add_edge(from, to, link);
        if is_handler {
            self.handler[from.index()] = Some(e);
        } else {
            self.children[from.index()].push(e);
        }
        e
    }

    /// Records that `aggregator` collects the bundles of `source`.
    pub fn add_aggregator(&mut self, source: NodeIndex, aggregator: NodeIndex) {
        self.aggregators[source.index()].push(aggregator);
    }

    /// A node.
    pub fn node(&self, ix: NodeIndex) -> &Node {
        &self.graph[ix]
    }

    /// The node with a scenario id.
    pub fn by_id(&self, id: u32) -> Option<NodeIndex> {
        self.by_id.get(&id).copied()
    }

    /// Outgoing next/route links in declared order: `(link, target)`.
    pub fn children(&self, ix: NodeIndex) -> impl Iterator<Item = (&Link, NodeIndex)> + '_ {
        self.children[ix.index()].iter().map(move |e| {
            let (_, to) = self
                .graph
                .edge_endpoints(*e)
                .expect("edge indexes in `children` come from `add_link`");
            (&self.graph[*e], to)
        })
    }

    /// The error-handler link of a node, if it has a handler flow.
    pub fn handler(&self, ix: NodeIndex) -> Option<(&Link, NodeIndex)> {
        self.handler[ix.index()].map(|e| {
            let (_, to) = self
                .graph
                .edge_endpoints(e)
                .expect("edge indexes in `handler` come from `add_link`");
            (&self.graph[e], to)
        })
    }

    /// The aggregators collecting this node's bundles.
    pub fn aggregators_of(&self, ix: NodeIndex) -> &[NodeIndex] {
        &self.aggregators[ix.index()]
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether there are no modules.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }
}
