//! FOCUS 1.2 and CMS: other clouds' cost data in, billed data out.
//!
//! ## Import (hybrid clouds)
//!
//! Each FOCUS charge becomes a usage record billed by pass-through pricing (its cost, converted to the price
//! list's currency, times `1 + uplift`; see [`crate::billing`]):
//! - subscription: the charge's account, `SubAccountId` (the Azure subscription, AWS account, GCP project),
//!   else `BillingAccountId` for account-level charges, as written (Azure writes `/subscriptions/<guid>`); an
//!   [`AccountMap`] (`cms ingest focus --map FILE.csv`) names the subscription of an account instead. By
//!   default (no map, or an account the map lacks) the account id is the subscription id. The channel must
//!   hold it as a subscription node to bill it;
//! - meter: a stable GUID derived from what identifies the charge (provider, service, SKU, SKU price, charge
//!   category and class, pricing category, description), so a re-import deduplicates and a changed cost is
//!   a correction;
//! - interval: `ChargePeriodStart`..`ChargePeriodEnd`; resource: `ResourceId`; region: `RegionId`;
//! - quantity: `ConsumedQuantity`, else `PricingQuantity`, else 0; cost: `BilledCost` in `BillingCurrency`;
//! - tags: the FOCUS tags; `additionalInfo`: provider, service, SKU, description, unit, category and class.
//!
//! `Tax` rows are not imported: CMS computes the taxes of its own invoices. Usage, purchases, credits and
//! adjustments are.
//!
//! ## Export (billed data, per hierarchy level)
//!
//! [`export_charges`] turns the invoices of a month-end below one issuer (the platform, a distributor or a
//! partner) into FOCUS charges: `InvoiceIssuerName` is the issuer, `BillingAccountId` the tenant,
//! `SubAccountId` the subscription, costs are the invoiced (rounded) amounts, and the extension columns of
//! [`EXPORT_EXTENSIONS`] carry the channel. Adjustment lines (late or corrected usage of an invoiced period)
//! are `ChargeClass = Correction` with the charge period of the period they correct.

use std::collections::BTreeMap;
use std::io::Read;

use rust_decimal::Decimal;

use crate::billing::{Invoice, InvoiceLine, LineKind, MonthEndReport};
use crate::error::CmsError;
use crate::formats::csv_input::CsvInput;
use crate::formats::focus::{ChargeCategory, ChargeClass, ChargeFrequency, FocusCharge, ServiceCategory};
use crate::model::hierarchy::{Hierarchy, NodeIndex, NodeKind};
use crate::model::meter::{Category, MeterId};
use crate::model::usage::{SourceCost, UsageRecord};

/// The extension columns of an export, in order.
pub const EXPORT_EXTENSIONS: [&str; 6] =
    ["x_DistributorId", "x_PartnerId", "x_TenantId", "x_PriceList", "x_MeterId", "x_LineKind"];

/// A stable 128-bit FNV-1a hash of `parts`, shaped as a version-8 (custom) UUID.
fn stable_guid(parts: &[&str]) -> MeterId {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
    let mut hash: u128 = 0x6C62_272E_07BB_0142_62B8_2175_6295_C58D;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0x1F)) {
            hash ^= u128::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    // Version 8 in the 13th hex digit, RFC 4122 variant in the 17th: a well-formed GUID.
    let shaped = (hash & !(0xF_u128 << 76) & !(0x3_u128 << 62)) | (0x8_u128 << 76) | (0x2_u128 << 62);
    MeterId::from_u128(shaped)
}

/// The meter CMS gives a FOCUS charge (see the module documentation).
pub fn focus_meter(charge: &FocusCharge) -> MeterId {
    let optional = |value: &Option<String>| value.clone().unwrap_or_default();
    stable_guid(&[
        "focus",
        &charge.provider_name,
        &charge.service_name,
        &optional(&charge.sku_id),
        &optional(&charge.sku_price_id),
        charge.charge_category.as_str(),
        charge.charge_class.map_or("", ChargeClass::as_str),
        charge.pricing_category.map_or("", |category| category.as_str()),
        &optional(&charge.charge_description),
    ])
}

/// Which subscription the charges of an account are billed to: FOCUS accounts (`SubAccountId`, else
/// `BillingAccountId`) mapped to the subscription ids of the channel, for accounts whose id is not the
/// channel's (`/subscriptions/<guid>` for `<guid>`, an AWS account or GCP project billed under a subscription
/// of its own). Accounts are matched ignoring ASCII case; an account the map lacks is its own subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountMap {
    /// Lower-cased account id -> subscription id.
    subscriptions: BTreeMap<String, String>,
}

impl AccountMap {
    /// An empty map: every account is its own subscription.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bill `account`'s charges to `subscription`; returns the subscription it had before, if any.
    pub fn insert(&mut self, account: &str, subscription: impl Into<String>) -> Option<String> {
        self.subscriptions.insert(account.to_ascii_lowercase(), subscription.into())
    }

    /// The subscription of `account`: its mapping, else the account id itself.
    pub fn subscription<'a>(&'a self, account: &'a str) -> &'a str {
        self.subscriptions.get(&account.to_ascii_lowercase()).map_or(account, String::as_str)
    }

    /// How many accounts are mapped.
    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    /// Whether no account is mapped.
    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }

    /// Read a map from CSV with the columns `account` and `subscription` (others ignored), `source` naming it
    /// in errors. Errors: `bad_header` without those columns; `bad_record` for an empty cell;
    /// `invalid_value` for an account mapped twice (ignoring case) to different subscriptions, naming the
    /// line.
    pub fn read_csv(input: impl Read, source: &str) -> Result<Self, CmsError> {
        let mut csv = CsvInput::new(input, source, &["account", "subscription"])?;
        let mut map = Self::new();
        while csv.next_record()? {
            let account = csv.required(0, "account")?;
            let subscription = csv.required(1, "subscription")?;
            if let Some(before) = map.insert(account, subscription)
                && before != subscription
            {
                return Err(CmsError::InvalidValue {
                    at: csv.location(),
                    text: account.to_owned(),
                    reason: format!("the account is mapped to {before} already, and here to {subscription}"),
                });
            }
        }
        Ok(map)
    }
}

/// The usage record of a FOCUS charge, or `None` for a `Tax` row. Its subscription is the charge's account
/// (see the module documentation); [`charge_to_usage_mapped`] maps accounts first.
pub fn charge_to_usage(charge: &FocusCharge) -> Option<UsageRecord> {
    charge_to_usage_mapped(charge, &AccountMap::new())
}

/// [`charge_to_usage`], with the charge's account (`SubAccountId`, else `BillingAccountId`) billed to the
/// subscription `accounts` gives it.
pub fn charge_to_usage_mapped(charge: &FocusCharge, accounts: &AccountMap) -> Option<UsageRecord> {
    if charge.charge_category == ChargeCategory::Tax {
        return None;
    }
    let mut additional_info = BTreeMap::new();
    let mut note = |name: &str, value: Option<&str>| {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            additional_info.insert(name.to_owned(), value.to_owned());
        }
    };
    note("provider", Some(&charge.provider_name));
    note("service", Some(&charge.service_name));
    note("sku", charge.sku_id.as_deref());
    note("description", charge.charge_description.as_deref());
    note("unit", charge.consumed_unit.as_deref().or(charge.pricing_unit.as_deref()));
    note("charge_category", Some(charge.charge_category.as_str()));
    note("charge_class", charge.charge_class.map(ChargeClass::as_str));
    Some(UsageRecord {
        subscription: accounts
            .subscription(charge.sub_account_id.as_deref().unwrap_or(&charge.billing_account_id))
            .to_owned(),
        meter: focus_meter(charge),
        start: charge.charge_period_start,
        end: charge.charge_period_end,
        quantity: charge.consumed_quantity.or(charge.pricing_quantity).unwrap_or_default(),
        resource_uri: charge.resource_id.clone().unwrap_or_default(),
        location: charge.region_id.clone().or_else(|| charge.region_name.clone()).unwrap_or_default(),
        tags: charge
            .tags
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.as_text()?.into_owned())))
            .collect(),
        additional_info,
        cost: Some(SourceCost { amount: charge.billed_cost, currency: charge.billing_currency }),
        adjustments: Vec::new(),
    })
}

fn service_category(meter: MeterId) -> ServiceCategory {
    match meter.info().map(|info| info.category) {
        Some(Category::Compute) => ServiceCategory::Compute,
        Some(Category::Storage | Category::ManagedDisks) => ServiceCategory::Storage,
        Some(Category::Network) => ServiceCategory::Networking,
        Some(Category::SqlMySql) => ServiceCategory::Databases,
        Some(Category::KeyVault) => ServiceCategory::Security,
        Some(Category::AppService) => ServiceCategory::Web,
        None => ServiceCategory::Other,
    }
}

fn service_name(meter: MeterId) -> &'static str {
    match meter.info().map(|info| info.category) {
        Some(Category::Compute) => "Azure Stack Hub Compute",
        Some(Category::Storage) => "Azure Stack Hub Storage",
        Some(Category::ManagedDisks) => "Azure Stack Hub Managed Disks",
        Some(Category::Network) => "Azure Stack Hub Networking",
        Some(Category::SqlMySql) => "Azure Stack Hub SQL and MySQL",
        Some(Category::KeyVault) => "Azure Stack Hub Key Vault",
        Some(Category::AppService) => "Azure Stack Hub App Service",
        None => "Other",
    }
}

/// One invoice line as a FOCUS charge issued by `issuer`.
fn line_charge(
    hierarchy: &Hierarchy,
    issuer: &str,
    invoice: &Invoice,
    tenant: NodeIndex,
    line: &InvoiceLine,
) -> FocusCharge {
    let subscription_name = hierarchy.get(&line.subscription).map(|node| node.name.clone());
    let above = |kind| hierarchy.ancestor_of_kind(tenant, kind).map(|node| hierarchy.node(node).id.clone());
    let mut extensions = BTreeMap::new();
    for (name, value) in [
        ("x_DistributorId", line.distributor.clone().or_else(|| above(NodeKind::Distributor))),
        ("x_PartnerId", line.partner.clone().or_else(|| above(NodeKind::Partner))),
        ("x_TenantId", Some(invoice.buyer.clone())),
        ("x_PriceList", Some(line.price_list.clone())),
        ("x_MeterId", Some(line.meter.canonical())),
    ] {
        if let Some(value) = value {
            extensions.insert(name.to_owned(), value);
        }
    }
    let (kind, charge_period, charge_class, category) = match line.kind {
        LineKind::Usage => ("usage", invoice.period, None, ChargeCategory::Usage),
        LineKind::PassThrough { .. } => ("pass_through", invoice.period, None, ChargeCategory::Usage),
        LineKind::Adjustment { adjusts } => {
            ("adjustment", adjusts, Some(ChargeClass::Correction), ChargeCategory::Usage)
        }
        LineKind::Discount { .. } => ("discount", invoice.period, None, ChargeCategory::Credit),
        LineKind::MinimumCommitment { .. } => {
            ("minimum_commitment", invoice.period, None, ChargeCategory::Purchase)
        }
        LineKind::Credit { .. } => ("credit", invoice.period, None, ChargeCategory::Credit),
    };
    extensions.insert("x_LineKind".to_owned(), kind.to_owned());
    let info = line.meter.info();
    let unit = Some(line.unit.clone()).filter(|unit| !unit.is_empty());
    FocusCharge {
        availability_zone: None,
        billed_cost: line.amount,
        billing_account_id: invoice.buyer.clone(),
        billing_account_name: Some(invoice.buyer_name.clone()),
        billing_account_type: Some(match invoice.buyer_kind {
            NodeKind::Distributor => "Distributor".into(),
            NodeKind::Partner => "Partner".into(),
            _ => "Tenant".into(),
        }),
        billing_currency: invoice.currency,
        billing_period_end: invoice.period.end,
        billing_period_start: invoice.period.start,
        capacity_reservation_id: None,
        capacity_reservation_status: None,
        charge_category: category,
        charge_class,
        charge_description: Some(info.map_or_else(|| line.meter.canonical(), |info| info.name.to_owned())),
        charge_frequency: Some(ChargeFrequency::UsageBased),
        charge_period_end: charge_period.end,
        charge_period_start: charge_period.start,
        commitment_discount_category: None,
        commitment_discount_id: None,
        commitment_discount_name: None,
        commitment_discount_quantity: None,
        commitment_discount_status: None,
        commitment_discount_type: None,
        commitment_discount_unit: None,
        consumed_quantity: Some(line.quantity),
        consumed_unit: unit.clone(),
        contracted_cost: line.amount,
        contracted_unit_price: None,
        effective_cost: line.amount,
        invoice_id: None,
        invoice_issuer_name: issuer.to_owned(),
        list_cost: line.amount,
        list_unit_price: None,
        pricing_category: None,
        pricing_currency: None,
        pricing_currency_contracted_unit_price: None,
        pricing_currency_effective_cost: None,
        pricing_currency_list_unit_price: None,
        pricing_quantity: Some(line.quantity),
        pricing_unit: unit,
        provider_name: issuer.to_owned(),
        publisher_name: if info.is_some() { "Microsoft".to_owned() } else { issuer.to_owned() },
        region_id: None,
        region_name: None,
        resource_id: None,
        resource_name: None,
        resource_type: None,
        service_category: service_category(line.meter),
        service_name: service_name(line.meter).to_owned(),
        service_subcategory: None,
        sku_id: Some(line.meter.canonical()),
        sku_meter: info.map(|info| info.name.to_owned()),
        sku_price_details: BTreeMap::new(),
        sku_price_id: Some(format!("{}/{}", line.price_list, line.meter.canonical())),
        sub_account_id: Some(line.subscription.clone()).filter(|id| !id.is_empty()),
        sub_account_name: subscription_name,
        sub_account_type: Some("Subscription".into()),
        tags: BTreeMap::new(),
        extensions,
    }
}

/// The billed data of a month-end as FOCUS charges issued by `issuer`: every line of every invoice of a
/// tenant at or below it, in invoice order.
pub fn export_charges(report: &MonthEndReport, hierarchy: &Hierarchy, issuer: NodeIndex) -> Vec<FocusCharge> {
    let issuer_name = &hierarchy.node(issuer).name;
    report
        .invoices
        .iter()
        .filter_map(|invoice| {
            let tenant = hierarchy.find(&invoice.buyer)?;
            hierarchy.is_within(tenant, issuer).then_some((invoice, tenant))
        })
        .flat_map(|(invoice, tenant)| {
            invoice.lines.iter().map(move |line| line_charge(hierarchy, issuer_name, invoice, tenant, line))
        })
        .collect()
}

/// The total billed of some charges (for reconciliation with the invoices).
pub fn billed_total(charges: &[FocusCharge]) -> Decimal {
    charges.iter().map(|charge| charge.billed_cost).sum()
}
