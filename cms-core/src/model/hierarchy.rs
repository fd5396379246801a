//! The channel: platform > distributor > partner > tenant > subscription, as a tree of nodes.
//!
//! A node's parent must be of a higher level (a tenant may sit under a partner, or directly under a
//! distributor or the platform for direct customers), so every branch reads top-down in that order.
//! Node names and the labels of the levels are renamable: an enterprise calls tenants "departments".
//!
//! # Moves and time
//! Tenants (to a partner, a distributor or the platform) and subscriptions (to a tenant) can move, each move
//! effective at an instant: usage starting at or after that instant belongs to the new branch, usage
//! before it to the old one. The tree therefore has two readings:
//! - the *latest structure*, every move applied: [`Node::parent`], [`Hierarchy::parent`],
//!   [`Hierarchy::children`], [`Hierarchy::ancestry`], [`Hierarchy::ancestor_of_kind`],
//!   [`Hierarchy::is_within`] and [`Hierarchy::subtree`]. Use it for "who is where now" (access checks,
//!   onboarding, listings);
//! - the structure *at an instant*: [`Hierarchy::parent_at`], [`Hierarchy::ancestry_at`],
//!   [`Hierarchy::ancestor_of_kind_at`] and [`Hierarchy::is_in_subtree_at`]. Use it for anything that
//!   attributes usage (prices, invoices, commissions): the usage start time picks the branch.
//!   [`Hierarchy::changes_between`] names the instants inside a period where a node's branch changes, so a
//!   period can be cut into pieces of constant ancestry.
//!
//! Moves of one node are recorded in time order (each after that node's previous move); moves of
//! different nodes may be recorded in any order. Before its first move a node sits under the parent it was
//! added with, for all of time (the tree does not know when nodes were created).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};
use crate::model::time::Instant;

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

/// Index of a node inside its [`Hierarchy`]; stable for the hierarchy's lifetime (nodes are never removed,
/// and a move keeps the index).
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
    /// Parent's id in the latest structure (every move applied); `None` only for the platform.
    pub parent: Option<String>,
}

/// A node moved to a new parent, effective at an instant (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The node that moved (a tenant or a subscription).
    pub node: String,
    /// Its parent just before `effective`.
    pub from: String,
    /// Its parent from `effective` on.
    pub to: String,
    /// Usage starting at or after this instant is on the new branch.
    pub effective: Instant,
}

/// One change of a node's parent, by index (the per-node history behind the `_at` queries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ParentChange {
    effective: Instant,
    from: NodeIndex,
    to: NodeIndex,
}

/// The channel tree.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    nodes: Vec<Node>,
    /// Parents in the latest structure.
    parents: Vec<Option<NodeIndex>>,
    /// Children in the latest structure.
    children: Vec<Vec<NodeIndex>>,
    index: HashMap<String, NodeIndex>,
    folded: HashMap<String, NodeIndex>,
    labels: [String; 5],
    /// Every move, in the order recorded.
    moves: Vec<Move>,
    /// Parent changes of the nodes that moved, in time order per node. Sparse because moves are rare: a
    /// node without an entry never moved, and its parent at any instant is its parent in `parents`.
    history: HashMap<NodeIndex, Vec<ParentChange>>,
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
            moves: Vec::new(),
            history: HashMap::new(),
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

    /// Parent of a node in the latest structure (`None` for the platform).
    pub fn parent(&self, index: NodeIndex) -> Option<NodeIndex> {
        self.parents[index.get()]
    }

    /// Direct children in the latest structure, in the order they were added or moved in.
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

    /// The node itself, then its parent, up to the platform, in the latest structure.
    pub fn ancestry(&self, index: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        std::iter::successors(Some(index), |&current| self.parent(current))
    }

    /// The nearest node of `kind` on the way up, the node itself included, in the latest structure.
    pub fn ancestor_of_kind(&self, index: NodeIndex, kind: NodeKind) -> Option<NodeIndex> {
        self.ancestry(index).find(|&current| self.node(current).kind == kind)
    }

    /// Whether `index` is `ancestor` or lies below it, in the latest structure.
    pub fn is_within(&self, index: NodeIndex, ancestor: NodeIndex) -> bool {
        self.ancestry(index).any(|current| current == ancestor)
    }

    /// The node and everything below it in the latest structure, depth first, parents before children.
    pub fn subtree(&self, index: NodeIndex) -> Vec<NodeIndex> {
        let mut out = Vec::new();
        let mut stack = vec![index];
        while let Some(current) = stack.pop() {
            out.push(current);
            stack.extend(self.children(current).iter().rev());
        }
        out
    }

    /// Check that [`Self::move_node`] would accept a move, without moving; returns the indices of the node
    /// and of its new parent.
    ///
    /// Only tenants (to a partner, a distributor or the platform) and subscriptions (to a tenant) move. The
    /// new parent must not be the node or lie below it, must differ from the node's parent as of
    /// `effective`, and `effective` must come after the node's previous move.
    pub fn check_move(
        &self,
        id: &str,
        new_parent: &str,
        effective: Instant,
    ) -> Result<(NodeIndex, NodeIndex), CmsError> {
        let invalid =
            |reason: String| CmsError::InvalidHierarchy { id: id.to_owned(), reason, context: None };
        let node = self.find(id).ok_or_else(|| CmsError::UnknownNode {
            kind: "node".into(),
            id: id.to_owned(),
            context: None,
        })?;
        let parent = self.find(new_parent).ok_or_else(|| CmsError::UnknownNode {
            kind: "parent".into(),
            id: new_parent.to_owned(),
            context: None,
        })?;
        let kind = self.node(node).kind;
        let parent_kind = self.node(parent).kind;
        if !matches!(kind, NodeKind::Tenant | NodeKind::Subscription) {
            return Err(invalid(format!("only tenants and subscriptions move; {id} is a {kind}")));
        }
        if self.is_within(parent, node) || self.is_in_subtree_at(parent, node, effective) {
            return Err(invalid(format!("moving it under {new_parent} would make a cycle")));
        }
        let allowed = match kind {
            NodeKind::Subscription => parent_kind == NodeKind::Tenant,
            _ => parent_kind < kind,
        };
        if !allowed {
            let expected = if kind == NodeKind::Subscription {
                "a tenant"
            } else {
                "a partner, a distributor or the platform"
            };
            return Err(invalid(format!(
                "a {kind} moves to {expected}, not to a {parent_kind} ({new_parent})"
            )));
        }
        if let Some(last) = self.history.get(&node).and_then(|changes| changes.last())
            && effective <= last.effective
        {
            return Err(invalid(format!(
                "a move at {} must come after its previous move at {}",
                effective.to_rfc3339(),
                last.effective.to_rfc3339()
            )));
        }
        if self.parent_at(node, effective) == Some(parent) {
            return Err(invalid(format!("it is already under {new_parent} at {}", effective.to_rfc3339())));
        }
        Ok((node, parent))
    }

    /// Move a tenant or a subscription under `new_parent`, effective at `effective` (see the module docs
    /// and [`Self::check_move`]). The latest structure changes at once; the `_at` queries see the old parent
    /// before `effective`. The node goes last among its new parent's children.
    pub fn move_node(&mut self, id: &str, new_parent: &str, effective: Instant) -> Result<(), CmsError> {
        let (node, parent) = self.check_move(id, new_parent, effective)?;
        // A node other than the platform always has a parent, and only the platform lacks one.
        let Some(old_parent) = self.parent(node) else {
            return Err(CmsError::InvalidHierarchy {
                id: id.to_owned(),
                reason: "the platform does not move".into(),
                context: None,
            });
        };
        self.history.entry(node).or_default().push(ParentChange { effective, from: old_parent, to: parent });
        self.parents[node.get()] = Some(parent);
        self.children[old_parent.get()].retain(|&child| child != node);
        self.children[parent.get()].push(node);
        let from = self.node(old_parent).id.clone();
        let to = self.node(parent).id.clone();
        self.nodes[node.get()].parent = Some(to.clone());
        self.moves.push(Move { node: id.to_owned(), from, to, effective });
        Ok(())
    }

    /// Every move, in the order recorded.
    pub fn moves(&self) -> &[Move] {
        &self.moves
    }

    /// Parent of a node at an instant: the target of its latest move effective at or before `at`, else the
    /// parent it was added with. `None` for the platform.
    pub fn parent_at(&self, node: NodeIndex, at: Instant) -> Option<NodeIndex> {
        if self.history.is_empty() {
            return self.parent(node);
        }
        let Some(changes) = self.history.get(&node) else {
            return self.parent(node);
        };
        let applied = changes.partition_point(|change| change.effective <= at);
        match applied.checked_sub(1) {
            Some(last) => Some(changes[last].to),
            None => changes.first().map(|first| first.from),
        }
    }

    /// The node itself, then its parent at `at`, up to the platform.
    pub fn ancestry_at(&self, node: NodeIndex, at: Instant) -> impl Iterator<Item = NodeIndex> + '_ {
        std::iter::successors(Some(node), move |&current| self.parent_at(current, at))
    }

    /// The nearest node of `kind` on the way up at `at`, the node itself included.
    pub fn ancestor_of_kind_at(&self, node: NodeIndex, kind: NodeKind, at: Instant) -> Option<NodeIndex> {
        self.ancestry_at(node, at).find(|&current| self.node(current).kind == kind)
    }

    /// Whether `node` is `root` or lies below it at `at`.
    pub fn is_in_subtree_at(&self, node: NodeIndex, root: NodeIndex, at: Instant) -> bool {
        self.ancestry_at(node, at).any(|current| current == root)
    }

    /// The instants `t` with `from < t < to` at which the node's ancestry changes: a move of the node
    /// itself, or of a node that is its ancestor at `t`. Sorted, without repeats. Cutting `[from, to)` at
    /// these instants gives pieces over which [`Self::ancestry_at`] is constant.
    pub fn changes_between(&self, node: NodeIndex, from: Instant, to: Instant) -> Vec<Instant> {
        let mut out = Vec::new();
        if from < to && !self.history.is_empty() {
            self.collect_changes(node, from, to, &mut out);
            out.sort_unstable();
            out.dedup();
        }
        out
    }

    /// Pushes the ancestry changes of `node` strictly inside `(from, to)`.
    fn collect_changes(&self, node: NodeIndex, from: Instant, to: Instant, out: &mut Vec<Instant>) {
        let Some(changes) = self.history.get(&node) else {
            if let Some(parent) = self.parent(node) {
                self.collect_changes(parent, from, to, out);
            }
            return;
        };
        // Between two of its own moves the node has one parent; that parent's changes inside the
        // overlap with (from, to) are the node's too. The move instants themselves are pushed here, so
        // the recursion looks only strictly inside each piece.
        let mut piece_start: Option<Instant> = None;
        let mut parent = changes.first().map(|first| first.from);
        for change in changes {
            if let Some(parent) = parent {
                self.collect_piece(parent, piece_start, Some(change.effective), from, to, out);
            }
            if from < change.effective && change.effective < to {
                out.push(change.effective);
            }
            piece_start = Some(change.effective);
            parent = Some(change.to);
        }
        if let Some(parent) = parent {
            self.collect_piece(parent, piece_start, None, from, to, out);
        }
    }

    /// The changes of `parent` inside `(from, to)` intersected with the piece `[start, end)` (`None`: unbounded).
    fn collect_piece(
        &self,
        parent: NodeIndex,
        start: Option<Instant>,
        end: Option<Instant>,
        from: Instant,
        to: Instant,
        out: &mut Vec<Instant>,
    ) {
        let low = start.map_or(from, |start| start.max(from));
        let high = end.map_or(to, |end| end.min(to));
        if low < high {
            self.collect_changes(parent, low, high, out);
        }
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

    fn at(hour: u32) -> Instant {
        use chrono::TimeZone;
        chrono::Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(hour.into())
    }

    fn ids(tree: &Hierarchy, indices: impl Iterator<Item = NodeIndex>) -> Vec<String> {
        indices.map(|index| tree.node(index).id.clone()).collect()
    }

    #[test]
    fn a_move_splits_history_at_its_instant() {
        let mut tree = channel();
        let s1 = tree.find("s1").unwrap();
        let t1 = tree.find("t1").unwrap();
        tree.move_node("t1", "p2", at(10)).unwrap();
        // Before the move: the old branch; at and after it: the new one.
        assert_eq!(ids(&tree, tree.ancestry_at(s1, at(9))), ["s1", "t1", "p1", "dist", "platform"]);
        assert_eq!(ids(&tree, tree.ancestry_at(s1, at(10))), ["s1", "t1", "p2", "dist", "platform"]);
        // The latest structure has every move applied.
        assert_eq!(ids(&tree, tree.ancestry(s1)), ["s1", "t1", "p2", "dist", "platform"]);
        assert_eq!(tree.get("t1").unwrap().parent.as_deref(), Some("p2"));
        assert_eq!(ids(&tree, tree.children(tree.find("p2").unwrap()).iter().copied()), ["t2", "t1"]);
        assert!(tree.children(tree.find("p1").unwrap()).is_empty());
        assert_eq!(tree.ancestor_of_kind_at(s1, NodeKind::Partner, at(0)), tree.find("p1"));
        assert!(tree.is_in_subtree_at(s1, tree.find("p1").unwrap(), at(9)));
        assert!(!tree.is_in_subtree_at(s1, tree.find("p1").unwrap(), at(10)));
        // The subscription did not move itself, but its ancestry changed at hour 10.
        assert_eq!(tree.changes_between(s1, at(0), at(24)), [at(10)]);
        assert!(tree.changes_between(s1, at(10), at(24)).is_empty(), "a change at `from` is not inside");
        assert!(tree.changes_between(s1, at(0), at(10)).is_empty(), "a change at `to` is not inside");
        assert_eq!(tree.parent_at(t1, at(9)), tree.find("p1"));
        assert_eq!(
            tree.moves(),
            [Move { node: "t1".into(), from: "p1".into(), to: "p2".into(), effective: at(10) }]
        );
        // A subscription's own move and its tenant's move both count, once each.
        tree.move_node("s1", "t2", at(15)).unwrap();
        tree.move_node("t1", "direct", at(15)).unwrap_err();
        tree.move_node("t1", "platform", at(20)).unwrap();
        assert_eq!(tree.changes_between(s1, at(0), at(24)), [at(10), at(15)]);
        assert_eq!(tree.changes_between(t1, at(0), at(24)), [at(10), at(20)]);
        assert_eq!(ids(&tree, tree.ancestry_at(s1, at(21))), ["s1", "t2", "p2", "dist", "platform"]);
    }

    #[test]
    fn refused_moves_change_nothing() {
        let mut tree = channel();
        tree.move_node("t1", "p2", at(10)).unwrap();
        let before = (tree.moves().len(), ids(&tree, tree.nodes().map(|(index, _)| index)));
        let refused = [
            ("p1", "dist", at(11), "invalid_hierarchy"), // partners do not move
            ("dist", "platform", at(11), "invalid_hierarchy"), // nor distributors
            ("platform", "dist", at(11), "invalid_hierarchy"), // nor the platform
            ("t1", "s1", at(11), "invalid_hierarchy"),   // under its own subscription: a cycle
            ("t1", "t1", at(11), "invalid_hierarchy"),   // under itself
            ("t1", "t2", at(11), "invalid_hierarchy"),   // a tenant under a tenant
            ("s1", "p1", at(11), "invalid_hierarchy"),   // subscriptions move to tenants only
            ("s1", "platform", at(11), "invalid_hierarchy"),
            ("t1", "p2", at(11), "invalid_hierarchy"), // already there
            ("t1", "p1", at(9), "invalid_hierarchy"),  // before its previous move
            ("t1", "p1", at(10), "invalid_hierarchy"), // at its previous move
            ("nope", "p1", at(11), "unknown_node"),
            ("t1", "nope", at(11), "unknown_node"),
        ];
        for (node, parent, effective, code) in refused {
            assert_eq!(
                tree.check_move(node, parent, effective).unwrap_err().code(),
                code,
                "{node} -> {parent}"
            );
            assert_eq!(
                tree.move_node(node, parent, effective).unwrap_err().code(),
                code,
                "{node} -> {parent}"
            );
        }
        assert_eq!((tree.moves().len(), ids(&tree, tree.nodes().map(|(index, _)| index))), before);
        // Moving back later is fine, and other nodes' moves need no order among themselves.
        tree.move_node("s1", "t2", at(5)).unwrap();
        tree.move_node("t1", "p1", at(11)).unwrap();
        assert_eq!(
            tree.check_move("t1", "p2", at(12)).unwrap(),
            (tree.find("t1").unwrap(), tree.find("p2").unwrap())
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
