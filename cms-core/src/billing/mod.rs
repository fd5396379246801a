//! Documents: invoices (to tenants, and between resellers in resale chains), commission statements per
//! partner, override statements per distributor, margins per reseller, and the month-end that produces
//! them from usage rated at every level of the billing chain.

pub mod allocation;
pub mod chargeback;
pub mod invoice;
pub mod month_end;
pub mod rating;
pub mod statements;

pub use allocation::{allocate, allocate_even};
pub use chargeback::{
    AllocationMethod, ChargebackSettings, DEFAULT_EXPENSE_ACCOUNT, DEFAULT_RECOVERY_ACCOUNT, Department,
    JournalLine, Project, SharedAllocation, SharedCost, SharedShare, SharedSource, ShowbackReport,
    TenantShare, journal, journal_csv, showback,
};
pub use month_end::{
    AdjustmentQuantity, BillingInput, BillingRules, CommissionStatement, FxApplied, Invoice, InvoiceLine,
    LineKind, MarginStatement, MonthEndReport, NotBilled, NotBilledReason, OverrideStatement,
    PassThroughBefore, PassThroughCharge, TenantRevenue, bill, bill_with, slices_of,
};
pub use rating::{BillingContext, Parts, UsageSlice};
