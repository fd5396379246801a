//! Governance: who may do what where ([`rbac`]), rules on what may be done ([`policy`]), and the
//! hash-chained record of everything done or refused ([`audit`]).

pub mod audit;
pub mod policy;
pub mod rbac;
