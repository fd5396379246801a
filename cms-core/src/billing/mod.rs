//! Documents: invoices per tenant, commission statements per partner, override statements per distributor,
//! and the month-end that produces them from rated quantities.

pub mod month_end;

pub use month_end::{
    BillingRules, CommissionStatement, Invoice, InvoiceLine, MonthEndReport, OverrideStatement,
    TenantRevenue, UnpricedUsage, bill,
};
