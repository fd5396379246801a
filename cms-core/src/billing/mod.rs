//! Documents: invoices per tenant, commission statements per partner, override statements per distributor,
//! and the month-end that produces them from rated quantities.

pub mod month_end;

pub use month_end::{
    AdjustmentQuantity, BillingInput, BillingRules, CommissionStatement, Invoice, InvoiceLine, LineKind,
    MonthEndReport, NotBilled, NotBilledReason, OverrideStatement, PassThroughBefore, PassThroughCharge,
    TenantRevenue, bill, bill_with,
};
