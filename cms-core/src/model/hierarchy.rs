//! The channel: platform > distributor > partner > tenant > subscription, as a tree of nodes.
//!
//! A node's parent must be of a higher level (a tenant may sit under a partner, or directly under a
//! distributor or the platform for direct customers), so every branch reads top-down in that order.
//! Node names and the labels of the levels are renamable: an enterprise calls tenants "departments".

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};

/// The level of a node. The order is the channel's: platform first, subscription last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// The operator running CMS; the one root.
    Platform,
    /// Top commercial tier, owns partners.
    Distributor,
    /// Customer-facing reseller, owns tenants.
    Partner,
    /// A consuming organisation (or a department, in enterprise mode).
    Tenant,
    /// The unit of consumption: an Azure Stack Hub subscription.
    Subscription,
}

impl NodeKind {
    /// Every kind, top-down.
    pub const ALL: [Self; 5] =
        [Self::Platform, Self::Distributor, Self::Partner, Self::Tenant, Self::Subscription];

    /// The lower-case name used in files and APIs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Distributor => "distributor",
            Self::Partner => "partner",
            Self::Tenant => "tenant",
            Self::Subscription => "subscription",
        }
    }

    const fn default_label(self) -> &'static str {
        match self {
            Self::Platform => "Platform",
            Self::Distributor => "Distributor",
            Self::Partner => "Partner",
            Self::Tenant => "Tenant",
            Self::Subscription => "Subscription",
        }
    }
}

impl FromStr for NodeKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|kind| kind.as_str().eq_ignore_ascii_case(text.trim())).ok_or_else(|| {
            format!(
                "unknown node kind {text:?} (expected platform, distributor, partner, tenant or subscription)"
            )
        })
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Index of a node inside its [`Hierarchy`]; stable for the hierarchy's lifetime (nodes are never removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeIndex(u32);

impl NodeIndex {
    /// The index as a `usize`, for side tables.
    pub const fn get(self) -> usize {
        self.0 as usize
    }
}

/// One node of the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Stable id (for subscriptions, the Azure Stack Hub subscription GUID).
    pub id: String,
    /// Level.
    pub kind: NodeKind,
    /// Display name; renamable.
    pub name: String,
    /// Parent's id; `None` only for the platform.
    pub parent: Option<String>,
}

/// The channel tree.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    nodes: Vec<Node>,
    parents: Vec<Option<NodeIndex>>,
    children: Vec<Vec<NodeIndex>>,
    index: HashMap<String, NodeIndex>,
    folded: HashMap<String, NodeIndex>,
    labels: [String; 5],
}

impl Hierarchy {
    /// A channel with only its platform root.
    pub fn new(platform_id: &str, platform_name: &str) -> Self {
        let root = Node {
            id: platform_id.to_owned(),
            kind: NodeKind::Platform,
            name: platform_name.to_owned(),
            parent: None,
        };
        Self {
            index: HashMap::from([(platform_id.to_owned(), NodeIndex(0))]),
            folded: HashMap::from([(platform_id.to_ascii_lowercase(), NodeIndex(0))]),
            nodes: vec![root],
            parents: vec![None],
            children: vec![Vec::new()],
            labels: NodeKind::ALL.map(|kind| kind.default_label().to_owned()),
        }
    }

    /// The platform root.
    pub fn root(&self) -> NodeIndex {
        NodeIndex(0)
    }

    /// Number of nodes, the platform included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only the platform exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }

    /// Check that [`Self::add`] would accept a node, without adding it; returns the parent's index.
    pub fn check_add(
        &self,
        id: &str,
        kind: NodeKind,
        parent: Option<&str>,
        context: Option<&Location>,
    ) -> Result<NodeIndex, CmsError> {
        let invalid = |reason: String| CmsError::InvalidHierarchy {
            id: id.to_owned(),
            reason,
            context: context.cloned(),
        };
        if id.is_empty() {
            return Err(invalid("node id is empty".into()));
        }
        if self.index.contains_key(id) {
            return Err(CmsError::DuplicateNode { id: id.to_owned(), context: context.cloned() });
        }
        if kind == NodeKind::Platform {
            return Err(invalid("there is one platform, the root".into()));
        }
        let parent_index = match parent {
            None => self.root(),
            Some(parent_id) => self.find(parent_id).ok_or_else(|| CmsError::UnknownNode {
                kind: "parent".into(),
                id: parent_id.to_owned(),
                context: context.cloned(),
            })?,
        };
        let parent_kind = self.node(parent_index).kind;
        if parent_kind >= kind {
            return Err(invalid(format!(
                "a {kind} cannot sit under a {parent_kind} ({})",
                self.node(parent_index).id
            )));
        }
        if u32::try_from(self.nodes.len()).is_err() {
            return Err(CmsError::Overflow { what: "number of nodes".into() });
        }
        Ok(parent_index)
    }

    /// Add a node under `parent` (the platform when `None`). `context` names the input record for errors.
    pub fn add(
        &mut self,
        id: &str,
        kind: NodeKind,
        parent: Option<&str>,
        name: &str,
        context: Option<&Location>,
    ) -> Result<NodeIndex, CmsError> {
        let parent_index = self.check_add(id, kind, parent, context)?;
        let index = NodeIndex(next_index(self.nodes.len()));
        self.nodes.push(Node {
            id: id.to_owned(),
            kind,
            name: name.to_owned(),
            parent: Some(self.node(parent_index).id.clone()),
        });
        self.parents.push(Some(parent_index));
        self.children.push(Vec::new());
        self.children[parent_index.get()].push(index);
        self.index.insert(id.to_owned(), index);
        self.folded.entry(id.to_ascii_lowercase()).or_insert(index);
        Ok(index)
    }

    /// The index of a node id.
    pub fn find(&self, id: &str) -> Option<NodeIndex> {
        self.index.get(id).copied()
    }

    /// The index of a node id compared ignoring ASCII case (subscription GUIDs are case-insensitive); an
    /// exact match wins over a folded one.
    pub fn find_ignoring_case(&self, id: &str) -> Option<NodeIndex> {
        self.find(id).or_else(|| self.folded.get(&id.to_ascii_lowercase()).copied())
    }

    /// The node at an index.
    pub fn node(&self, index: NodeIndex) -> &Node {
        &self.nodes[index.get()]
    }

    /// The node with an id.
    pub fn get(&self, id: &str) -> Option<&Node> {
        self.find(id).map(|index| self.node(index))
    }

    /// The node with an id, which must be of `kind`.
    pub fn expect_kind(&self, id: &str, kind: NodeKind) -> Result<NodeIndex, CmsError> {
        self.find(id).filter(|&index| self.node(index).kind == kind).ok_or_else(|| CmsError::UnknownNode {
            kind: kind.as_str().into(),
            id: id.to_owned(),
            context: None,
        })
    }

    /// Parent of a node (`None` for the platform).
    pub fn parent(&self, index: NodeIndex) -> Option<NodeIndex> {
        self.parents[index.get()]
    }

    /// Direct children, in insertion order.
    pub fn children(&self, index: NodeIndex) -> &[NodeIndex] {
        &self.children[index.get()]
    }

    /// Rename a node.
    pub fn rename(&mut self, id: &str, name: &str) -> Result<(), CmsError> {
        let index = self.find(id).ok_or_else(|| CmsError::UnknownNode {
            kind: "node".into(),
            id: id.to_owned(),
            context: None,
        })?;
        name.clone_into(&mut self.nodes[index.get()].name);
        Ok(())
    }

    /// The node itself, then its parent, up to the platform.
    pub fn ancestry(&self, index: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        std::iter::successors(Some(index), |&current| self.parent(current))
    }

    /// The nearest node of `kind` on the way up, the node itself included.
    pub fn ancestor_of_kind(&self, index: NodeIndex, kind: NodeKind) -> Option<NodeIndex> {
        self.ancestry(index).find(|&current| self.node(current).kind == kind)
    }

    /// Whether `index` is `ancestor` or lies below it.
    pub fn is_within(&self, index: NodeIndex, ancestor: NodeIndex) -> bool {
        self.ancestry(index).any(|current| current == ancestor)
    }

    /// The node and everything below it, depth first, parents before children.
    pub fn subtree(&self, index: NodeIndex) -> Vec<NodeIndex> {
        let mut out = Vec::new();
        let mut stack = vec![index];
        while let Some(current) = stack.pop() {
            out.push(current);
            stack.extend(self.children(current).iter().rev());
        }
        out
    }

    /// Every node, in insertion order (the platform first).
    pub fn nodes(&self) -> impl Iterator<Item = (NodeIndex, &Node)> {
        self.nodes.iter().enumerate().map(|(position, node)| (NodeIndex(next_index(position)), node))
    }

    /// The display label of a level ("Tenant" by default).
    pub fn label(&self, kind: NodeKind) -> &str {
        &self.labels[kind as usize]
    }

    /// Rename a level: an enterprise calls tenants "Department" and subscriptions "Project".
    pub fn set_label(&mut self, kind: NodeKind, label: &str) {
        label.clone_into(&mut self.labels[kind as usize]);
    }
}

/// Positions fit in u32: [`Hierarchy::check_add`] refuses to grow past it.
fn next_index(position: usize) -> u32 {
    u32::try_from(position).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> Hierarchy {
        let mut tree = Hierarchy::new("platform", "Operator");
        tree.add("dist", NodeKind::Distributor, None, "Northwind", None).unwrap();
        tree.add("p1", NodeKind::Partner, Some("dist"), "Contoso", None).unwrap();
        tree.add("p2", NodeKind::Partner, Some("dist"), "Fabrikam", None).unwrap();
        tree.add("t1", NodeKind::Tenant, Some("p1"), "Tenant one", None).unwrap();
        tree.add("t2", NodeKind::Tenant, Some("p2"), "Tenant two", None).unwrap();
        tree.add("direct", NodeKind::Tenant, None, "Direct customer", None).unwrap();
        tree.add("s1", NodeKind::Subscription, Some("t1"), "Prod", None).unwrap();
        tree
    }

    #[test]
    fn ancestry_and_subtrees() {
        let tree = channel();
        let s1 = tree.find("s1").unwrap();
        let ids: Vec<_> = tree.ancestry(s1).map(|index| tree.node(index).id.as_str()).collect();
        assert_eq!(ids, ["s1", "t1", "p1", "dist", "platform"]);
        assert_eq!(tree.ancestor_of_kind(s1, NodeKind::Partner), tree.find("p1"));
        assert_eq!(tree.ancestor_of_kind(tree.find("direct").unwrap(), NodeKind::Partner), None);
        let dist = tree.find("dist").unwrap();
        let below: Vec<_> =
            tree.subtree(dist).into_iter().map(|index| tree.node(index).id.as_str()).collect();
        assert_eq!(below, ["dist", "p1", "t1", "s1", "p2", "t2"]);
        assert!(tree.is_within(s1, dist));
        assert!(!tree.is_within(tree.find("t2").unwrap(), tree.find("p1").unwrap()));
    }

    #[test]
    fn shape_is_enforced() {
        let mut tree = channel();
        let error = tree.add("bad", NodeKind::Partner, Some("t1"), "", None).unwrap_err();
        assert_eq!(error.code(), "invalid_hierarchy");
        assert_eq!(
            tree.add("t1", NodeKind::Tenant, Some("p1"), "", None).unwrap_err().code(),
            "duplicate_node"
        );
        assert_eq!(
            tree.add("x", NodeKind::Tenant, Some("nope"), "", None).unwrap_err().code(),
            "unknown_node"
        );
        assert_eq!(
            tree.add("y", NodeKind::Platform, None, "", None).unwrap_err().code(),
            "invalid_hierarchy"
        );
    }

    #[test]
    fn names_and_labels_are_renamable() {
        let mut tree = channel();
        tree.rename("t1", "Finance").unwrap();
        tree.set_label(NodeKind::Tenant, "Department");
        assert_eq!(tree.get("t1").unwrap().name, "Finance");
        assert_eq!(tree.label(NodeKind::Tenant), "Department");
        assert_eq!(tree.label(NodeKind::Partner), "Partner");
    }
}
