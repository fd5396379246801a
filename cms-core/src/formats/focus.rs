//! FOCUS 1.2 cost and usage data: import and export of the `FinOps` Open Cost and Usage Specification,
//! version 1.2 (<https://focus.finops.org/focus-specification/v1-2/>; repository
//! `FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec`, requirements model 1.2).
//!
//! Azure Cost Management (`FocusCost` exports), AWS Data Exports (FOCUS 1.2) and Google Cloud (the FOCUS
//! `BigQuery` view) name their columns exactly as the specification does; column order varies and each adds
//! its own columns prefixed `x_`. One row of such a file is a [`FocusCharge`].
//!
//! # Mapping
//!
//! - Every one of the 57 columns of the FOCUS 1.2 cost and usage dataset is a field of [`FocusCharge`]
//!   (`BilledCost` is `billed_cost`, ...). Columns the specification says must not be null are plain values;
//!   every other column is an `Option` (or an empty map), and a column absent from the file reads as null.
//! - Columns with allowed values are enums: [`ChargeCategory`], [`ChargeClass`], [`ChargeFrequency`],
//!   [`PricingCategory`], [`ServiceCategory`], [`CommitmentDiscountCategory`] and [`UtilizationStatus`]
//!   (`CommitmentDiscountStatus`, `CapacityReservationStatus`). Values are matched ignoring ASCII case and
//!   written as the specification spells them.
//! - Decimals (costs, prices, quantities) are parsed from their text, never through a float. Exponent
//!   notation (`1.5E-7`, as `BigQuery` writes floats) is accepted and shifted exactly; a value that needs
//!   more than 28 decimal places is refused rather than rounded. They are written as plain text
//!   (`0.00000015`).
//! - Date-times are UTC instants. FOCUS writes `YYYY-MM-DDTHH:mm:ssZ`; offsets are converted, a zero fraction
//!   (`.000Z`), a missing seconds field (`T00:00Z`) and `BigQuery`'s `YYYY-MM-DD HH:MM:SS UTC` are accepted.
//!   They are written as `YYYY-MM-DDTHH:MM:SSZ`.
//! - `BillingCurrency` must be a national currency (ISO 4217) and becomes a [`Currency`]; `PricingCurrency`
//!   may be a virtual currency (credits, tokens) and stays text.
//! - `Tags` and `SkuPriceDetails` are key-value columns: a JSON object in a string whose values are
//!   strings, numbers, `true`, `false` or `null` (FOCUS 1.2 key-value format; valueless tags carry `true`).
//!   They become maps of [`JsonScalar`]; numbers keep their exact JSON text. They are written as compact
//!   JSON with keys in order; an empty map is written as null.
//! - Every `x_` column is kept in [`FocusCharge::extensions`] (a null cell is absent from the map); any
//!   other column the specification does not define is ignored and listed in
//!   [`FocusReadSummary::ignored_columns`].
//! - Provider, publisher and issuer: FOCUS 1.2 has `ProviderName`, `PublisherName` and `InvoiceIssuerName`.
//!   `ServiceProviderName` and `HostProviderName` arrive in FOCUS 1.3, which deprecates but still requires
//!   `ProviderName` and `PublisherName`; so a 1.3 file reads here, and its two new columns are listed as
//!   ignored.
//!
//! # Import
//!
//! [`read_focus_csv`] streams a file row by row. The header must hold the [`MANDATORY_COLUMNS`] (the columns
//! FOCUS 1.2 says must be present in every dataset); other columns may be missing, in any order, matched
//! ignoring ASCII case. Each bad value stops the read with an error naming the file, the line and the
//! column. A record longer than [`MAX_RECORD_BYTES`] is refused, so a hostile file cannot make the reader
//! buffer without bound. The reader checks each value on its own; the specification's cross-column rules
//! (for example "`PricingCategory` must be null when `ChargeCategory` is Tax") are not enforced.
//!
//! With the cargo feature `parquet`, `focus_parquet` reads the same rows from Parquet files: it turns each
//! Parquet row into the cells a CSV export carries and validates them with this module's row function, so
//! both readers give the same charges.
//!
//! # Export
//!
//! [`write_focus_csv`] writes the 57 columns in the specification's (alphabetical) order, then the `x_`
//! columns the caller names. `read_focus_csv(write_focus_csv(rows))` gives back `rows`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{CmsError, Location};
use crate::formats::csv_input::GuardedReader;
use crate::model::money::{Currency, parse_decimal};
use crate::model::time::parse_timestamp;

/// The record size cap is shared by every CSV reader of the crate; it lives in
/// [`csv_input`](crate::formats::csv_input).
pub use crate::formats::csv_input::MAX_RECORD_BYTES;

/// The FOCUS version this module reads and writes.
pub const FOCUS_VERSION: &str = "1.2";

/// The columns a FOCUS 1.2 dataset must contain (the specification's presence rules marked MUST with no
/// condition); [`read_focus_csv`] refuses a header without any of them.
pub const MANDATORY_COLUMNS: &[&str] = &[
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
];

/// Longest value quoted back in an error message.
const EXCERPT_CHARS: usize = 200;
/// Label of the writer's output in errors.
const OUTPUT: &str = "FOCUS output";

macro_rules! focus_columns {
    ($($column:ident: $presence:ident,)+) => {
        /// A column of the FOCUS 1.2 cost and usage dataset; the discriminant is the write position.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Column {
            $($column,)+
        }

        impl Column {
            const ALL: &'static [Self] = &[$(Self::$column,)+];

            const fn name(self) -> &'static str {
                match self {
                    $(Self::$column => stringify!($column),)+
                }
            }

            const fn presence(self) -> Presence {
                match self {
                    $(Self::$column => Presence::$presence,)+
                }
            }
        }

        /// The 57 columns of the FOCUS 1.2 cost and usage dataset, in the order [`write_focus_csv`] writes
        /// them (the specification's alphabetical order).
        pub const FOCUS_COLUMNS: &[&str] = &[$(stringify!($column),)+];
    };
}

/// Whether FOCUS 1.2 requires a column in every dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    /// Must be present.
    Mandatory,
    /// Must be present when the provider supports the feature.
    Conditional,
    /// Recommended.
    Recommended,
}

focus_columns! {
    AvailabilityZone: Recommended,
    BilledCost: Mandatory,
    BillingAccountId: Mandatory,
    BillingAccountName: Mandatory,
    BillingAccountType: Conditional,
    BillingCurrency: Mandatory,
    BillingPeriodEnd: Mandatory,
    BillingPeriodStart: Mandatory,
    CapacityReservationId: Conditional,
    CapacityReservationStatus: Conditional,
    ChargeCategory: Mandatory,
    ChargeClass: Mandatory,
    ChargeDescription: Mandatory,
    ChargeFrequency: Recommended,
    ChargePeriodEnd: Mandatory,
    ChargePeriodStart: Mandatory,
    CommitmentDiscountCategory: Conditional,
    CommitmentDiscountId: Conditional,
    CommitmentDiscountName: Conditional,
    CommitmentDiscountQuantity: Conditional,
    CommitmentDiscountStatus: Conditional,
    CommitmentDiscountType: Conditional,
    CommitmentDiscountUnit: Conditional,
    ConsumedQuantity: Conditional,
    ConsumedUnit: Conditional,
    ContractedCost: Mandatory,
    ContractedUnitPrice: Conditional,
    EffectiveCost: Mandatory,
    InvoiceId: Recommended,
    InvoiceIssuerName: Mandatory,
    ListCost: Mandatory,
    ListUnitPrice: Conditional,
    PricingCategory: Conditional,
    PricingCurrency: Conditional,
    PricingCurrencyContractedUnitPrice: Conditional,
    PricingCurrencyEffectiveCost: Conditional,
    PricingCurrencyListUnitPrice: Conditional,
    PricingQuantity: Mandatory,
    PricingUnit: Mandatory,
    ProviderName: Mandatory,
    PublisherName: Mandatory,
    RegionId: Conditional,
    RegionName: Conditional,
    ResourceId: Conditional,
    ResourceName: Conditional,
    ResourceType: Conditional,
    ServiceCategory: Mandatory,
    ServiceName: Mandatory,
    ServiceSubcategory: Recommended,
    SkuId: Conditional,
    SkuMeter: Conditional,
    SkuPriceDetails: Conditional,
    SkuPriceId: Conditional,
    SubAccountId: Conditional,
    SubAccountName: Conditional,
    SubAccountType: Conditional,
    Tags: Conditional,
}

const COLUMN_COUNT: usize = Column::ALL.len();

macro_rules! focus_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every allowed value, in the order the specification lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The value as FOCUS spells it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The value spelled `text` (surrounding whitespace and ASCII case ignored).
            pub fn parse(text: &str) -> Option<Self> {
                let text = text.trim();
                Self::ALL.iter().copied().find(|value| value.as_str().eq_ignore_ascii_case(text))
            }

            fn allowed() -> String {
                Self::ALL.iter().map(|value| value.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

focus_enum! {
    /// `ChargeCategory`: the highest-level classification of a charge.
    ChargeCategory {
        /// Consumption of a resource or service.
        Usage = "Usage",
        /// A purchase: a commitment, a license, an upfront or recurring fee.
        Purchase = "Purchase",
        /// A tax.
        Tax = "Tax",
        /// A credit granted to the account.
        Credit = "Credit",
        /// Anything else the provider adjusts (not credits or refunds).
        Adjustment = "Adjustment",
    }
}

focus_enum! {
    /// `ChargeClass`: whether the row corrects charges of an earlier billing period (null otherwise).
    ChargeClass {
        /// A correction of one or more charges invoiced in a previous billing period.
        Correction = "Correction",
    }
}

focus_enum! {
    /// `ChargeFrequency`: how often the charge occurs.
    ChargeFrequency {
        /// Once.
        OneTime = "One-Time",
        /// On a schedule (monthly fees, amortised commitments).
        Recurring = "Recurring",
        /// Whenever the resource is used.
        UsageBased = "Usage-Based",
    }
}

focus_enum! {
    /// `PricingCategory`: the pricing model of the charge.
    PricingCategory {
        /// Predetermined at the agreed rate of the billing account.
        Standard = "Standard",
        /// Subject to an existing commitment discount.
        Committed = "Committed",
        /// Set by the provider and may change over time (spot, preemptible).
        Dynamic = "Dynamic",
        /// A pricing model none of the others describe.
        Other = "Other",
    }
}

focus_enum! {
    /// `ServiceCategory`: the highest-level classification of a service.
    ServiceCategory {
        /// AI and Machine Learning.
        AiAndMachineLearning = "AI and Machine Learning",
        /// Analytics.
        Analytics = "Analytics",
        /// Business Applications.
        BusinessApplications = "Business Applications",
        /// Compute.
        Compute = "Compute",
        /// Databases.
        Databases = "Databases",
        /// Developer Tools.
        DeveloperTools = "Developer Tools",
        /// Multicloud.
        Multicloud = "Multicloud",
        /// Identity.
        Identity = "Identity",
        /// Integration.
        Integration = "Integration",
        /// Internet of Things.
        InternetOfThings = "Internet of Things",
        /// Management and Governance.
        ManagementAndGovernance = "Management and Governance",
        /// Media.
        Media = "Media",
        /// Migration.
        Migration = "Migration",
        /// Mobile.
        Mobile = "Mobile",
        /// Networking.
        Networking = "Networking",
        /// Security.
        Security = "Security",
        /// Storage.
        Storage = "Storage",
        /// Web.
        Web = "Web",
        /// Other.
        Other = "Other",
    }
}

focus_enum! {
    /// `CommitmentDiscountCategory`: whether a commitment discount commits to spend or to usage.
    CommitmentDiscountCategory {
        /// A commitment to an amount of money.
        Spend = "Spend",
        /// A commitment to a quantity of usage.
        Usage = "Usage",
    }
}

focus_enum! {
    /// `CommitmentDiscountStatus` and `CapacityReservationStatus`: whether the row is the used or the
    /// unused part of a commitment or reservation.
    UtilizationStatus {
        /// Consumption of the commitment or reservation.
        Used = "Used",
        /// The part left unused.
        Unused = "Unused",
    }
}

/// A value of a FOCUS key-value column (`Tags`, `SkuPriceDetails`): a JSON scalar. Objects and arrays are
/// not allowed by the specification.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JsonScalar {
    /// A string.
    String(String),
    /// A number, as its exact JSON text (never converted to a float).
    Number(String),
    /// `true` (what a valueless tag carries) or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl JsonScalar {
    /// The value as text: the string itself, the number's JSON text, `true`/`false`, or `None` for null.
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::String(text) | Self::Number(text) => Some(Cow::Borrowed(text)),
            Self::Bool(flag) => Some(Cow::Borrowed(if *flag { "true" } else { "false" })),
            Self::Null => None,
        }
    }
}

/// One row of a FOCUS 1.2 cost and usage dataset: a charge, typed.
///
/// Each field is the column of the same name in `PascalCase`; nullable columns are `Option`s (a column
/// missing from the file reads as `None`) and key-value columns are maps (empty when null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocusCharge {
    /// `AvailabilityZone`: provider-assigned zone for high availability.
    pub availability_zone: Option<String>,
    /// `BilledCost`: the amount invoiced for the charge, in the billing currency.
    pub billed_cost: Decimal,
    /// `BillingAccountId`: the account invoices are issued to.
    pub billing_account_id: String,
    /// `BillingAccountName`: display name of the billing account.
    pub billing_account_name: Option<String>,
    /// `BillingAccountType`: provider label of what the billing account is (new in 1.2).
    pub billing_account_type: Option<String>,
    /// `BillingCurrency`: the currency every cost column is in.
    pub billing_currency: Currency,
    /// `BillingPeriodEnd`: exclusive end of the billing period.
    pub billing_period_end: DateTime<Utc>,
    /// `BillingPeriodStart`: inclusive start of the billing period.
    pub billing_period_start: DateTime<Utc>,
    /// `CapacityReservationId`: the capacity reservation the charge belongs to.
    pub capacity_reservation_id: Option<String>,
    /// `CapacityReservationStatus`: used or unused part of the capacity reservation.
    pub capacity_reservation_status: Option<UtilizationStatus>,
    /// `ChargeCategory`: usage, purchase, tax, credit or adjustment.
    pub charge_category: ChargeCategory,
    /// `ChargeClass`: `Some(Correction)` when the row corrects an earlier billing period.
    pub charge_class: Option<ChargeClass>,
    /// `ChargeDescription`: self-contained summary of the charge.
    pub charge_description: Option<String>,
    /// `ChargeFrequency`: one-time, recurring or usage-based.
    pub charge_frequency: Option<ChargeFrequency>,
    /// `ChargePeriodEnd`: exclusive end of the period the charge covers.
    pub charge_period_end: DateTime<Utc>,
    /// `ChargePeriodStart`: inclusive start of the period the charge covers.
    pub charge_period_start: DateTime<Utc>,
    /// `CommitmentDiscountCategory`: spend- or usage-based commitment.
    pub commitment_discount_category: Option<CommitmentDiscountCategory>,
    /// `CommitmentDiscountId`: the commitment discount (reservation, savings plan) applied.
    pub commitment_discount_id: Option<String>,
    /// `CommitmentDiscountName`: its display name.
    pub commitment_discount_name: Option<String>,
    /// `CommitmentDiscountQuantity`: amount of the commitment purchased or used, in its unit.
    pub commitment_discount_quantity: Option<Decimal>,
    /// `CommitmentDiscountStatus`: used or unused part of the commitment.
    pub commitment_discount_status: Option<UtilizationStatus>,
    /// `CommitmentDiscountType`: provider label of the kind of commitment.
    pub commitment_discount_type: Option<String>,
    /// `CommitmentDiscountUnit`: unit of `CommitmentDiscountQuantity`.
    pub commitment_discount_unit: Option<String>,
    /// `ConsumedQuantity`: volume consumed, in `ConsumedUnit`.
    pub consumed_quantity: Option<Decimal>,
    /// `ConsumedUnit`: the provider's unit of measure of consumption.
    pub consumed_unit: Option<String>,
    /// `ContractedCost`: `ContractedUnitPrice` x `PricingQuantity`.
    pub contracted_cost: Decimal,
    /// `ContractedUnitPrice`: agreed unit price (negotiated discounts, no commitment discounts).
    pub contracted_unit_price: Option<Decimal>,
    /// `EffectiveCost`: amortised cost after every discount and prepayment.
    pub effective_cost: Decimal,
    /// `InvoiceId`: the invoice the charge is billed on (new in 1.2).
    pub invoice_id: Option<String>,
    /// `InvoiceIssuerName`: who invoices the charge (the provider, a reseller, a marketplace).
    pub invoice_issuer_name: String,
    /// `ListCost`: `ListUnitPrice` x `PricingQuantity`.
    pub list_cost: Decimal,
    /// `ListUnitPrice`: public list price per pricing unit.
    pub list_unit_price: Option<Decimal>,
    /// `PricingCategory`: standard, committed, dynamic or other.
    pub pricing_category: Option<PricingCategory>,
    /// `PricingCurrency`: currency of the price list, national or virtual (new in 1.2).
    pub pricing_currency: Option<String>,
    /// `PricingCurrencyContractedUnitPrice`: contracted unit price in the pricing currency (new in 1.2).
    pub pricing_currency_contracted_unit_price: Option<Decimal>,
    /// `PricingCurrencyEffectiveCost`: effective cost in the pricing currency (new in 1.2).
    pub pricing_currency_effective_cost: Option<Decimal>,
    /// `PricingCurrencyListUnitPrice`: list unit price in the pricing currency (new in 1.2).
    pub pricing_currency_list_unit_price: Option<Decimal>,
    /// `PricingQuantity`: volume priced, in `PricingUnit`.
    pub pricing_quantity: Option<Decimal>,
    /// `PricingUnit`: the provider's unit of pricing.
    pub pricing_unit: Option<String>,
    /// `ProviderName`: who makes the resource or service available (FOCUS 1.3 renames it
    /// `ServiceProviderName`).
    pub provider_name: String,
    /// `PublisherName`: who produces the resource or service.
    pub publisher_name: String,
    /// `RegionId`: provider-assigned region identifier.
    pub region_id: Option<String>,
    /// `RegionName`: region display name.
    pub region_name: Option<String>,
    /// `ResourceId`: the resource charged for.
    pub resource_id: Option<String>,
    /// `ResourceName`: its display name.
    pub resource_name: Option<String>,
    /// `ResourceType`: its kind.
    pub resource_type: Option<String>,
    /// `ServiceCategory`: the specification's service classification.
    pub service_category: ServiceCategory,
    /// `ServiceName`: the provider's service.
    pub service_name: String,
    /// `ServiceSubcategory`: finer classification of the service.
    pub service_subcategory: Option<String>,
    /// `SkuId`: the SKU charged for.
    pub sku_id: Option<String>,
    /// `SkuMeter`: what the SKU meters.
    pub sku_meter: Option<String>,
    /// `SkuPriceDetails`: properties of the SKU price (key-value).
    pub sku_price_details: BTreeMap<String, JsonScalar>,
    /// `SkuPriceId`: the SKU price charged at.
    pub sku_price_id: Option<String>,
    /// `SubAccountId`: the subscription, account or project the resource belongs to.
    pub sub_account_id: Option<String>,
    /// `SubAccountName`: its display name.
    pub sub_account_name: Option<String>,
    /// `SubAccountType`: provider label of what the sub account is (new in 1.2).
    pub sub_account_type: Option<String>,
    /// `Tags`: user- and provider-defined tags (key-value).
    pub tags: BTreeMap<String, JsonScalar>,
    /// Every `x_` column, by its name as the header spells it; null cells are absent.
    pub extensions: BTreeMap<String, String>,
}

/// What [`read_focus_csv`] (or the Parquet reader, feature `parquet`) saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FocusReadSummary {
    /// Rows read (and visited).
    pub rows: u64,
    /// Rows per `ChargeCategory`.
    pub rows_by_charge_category: BTreeMap<ChargeCategory, u64>,
    /// Every `BillingCurrency` seen, ordered by code.
    pub currencies: Vec<Currency>,
    /// The `x_` columns of the header, in header order (pass them to [`write_focus_csv`] to keep them).
    pub extension_columns: Vec<String>,
    /// Header columns that are neither FOCUS 1.2 columns nor `x_` columns, in header order; their values
    /// are not read.
    pub ignored_columns: Vec<String>,
}

/// Stream a FOCUS 1.2 CSV file, calling `visit` with each row and its location (`source` line N, the
/// header being line 1). Stops at the first bad header, record or value, or at the first error `visit`
/// returns.
///
/// Errors: `bad_header` when a [`MANDATORY_COLUMNS`] entry is missing; `invalid_value` for a column that
/// appears twice, a value outside a column's allowed values or a bad currency code; `bad_decimal`,
/// `bad_timestamp`; `bad_json` for a key-value column that is not a JSON object of scalars; `bad_record`
/// for an empty mandatory value, invalid UTF-8, a wrong number of fields, bad quoting or a record longer
/// than [`MAX_RECORD_BYTES`]; `io` when `input` fails.
///
/// ```
/// use cms_core::formats::focus::{ChargeCategory, MANDATORY_COLUMNS, read_focus_csv};
///
/// let row = concat!(
///     "1.5E-7,acct-1,Contoso,USD,2025-06-01T00:00:00Z,2025-05-01T00:00:00Z,Usage,,VM hours,",
///     "2025-05-01T01:00:00Z,2025-05-01T00:00:00Z,1.5E-7,1.5E-7,Contoso,1.5E-7,1,Hours,Contoso,Microsoft,",
///     "Compute,Virtual Machines",
/// );
/// let file = format!("{}\n{row}\n", MANDATORY_COLUMNS.join(","));
/// let mut billed = Vec::new();
/// let summary = read_focus_csv(file.as_bytes(), "focus.csv", |charge, at| {
///     billed.push(format!("{at}: {}", charge.billed_cost));
///     Ok(())
/// })?;
/// assert_eq!(billed, ["focus.csv line 2: 0.00000015"]);
/// assert_eq!(summary.rows_by_charge_category[&ChargeCategory::Usage], 1);
/// # Ok::<(), cms_core::CmsError>(())
/// ```
pub fn read_focus_csv(
    input: impl Read,
    source: &str,
    mut visit: impl FnMut(&FocusCharge, &Location) -> Result<(), CmsError>,
) -> Result<FocusReadSummary, CmsError> {
    let mut reader = GuardedReader::new(input, source);
    let names = reader.header()?.iter().map(|name| String::from_utf8_lossy(name).into_owned()).collect();
    let layout = Layout::new(names, &Location::line(source, 1))?;
    let mut tally = Tally::default();
    let mut record = csv::ByteRecord::new();
    while let Some(line) = reader.read(&mut record)? {
        let at = Location::line(source, line);
        let charge = charge_of_row(&record, &layout, &at)?;
        tally.add(&charge);
        visit(&charge, &at)?;
    }
    Ok(tally.summary(layout))
}

/// Write `rows` as a FOCUS 1.2 CSV file: a header of the [`FOCUS_COLUMNS`] then `extension_columns`, one
/// line per row. Nulls are empty cells, decimals plain text, instants `YYYY-MM-DDTHH:MM:SSZ` (sub-second
/// parts are dropped), key-value columns compact JSON. A row's extension values whose names are not in
/// `extension_columns` are not written.
///
/// The writer does not check the rows against the specification (an empty mandatory string is written
/// as an empty cell, which [`read_focus_csv`] would refuse).
///
/// Errors: `invalid_value` when an extension column does not start with `x_` or is named twice, or when
/// a [`JsonScalar::Number`] is not a JSON number; `io` when `out` fails.
pub fn write_focus_csv<'a>(
    rows: impl IntoIterator<Item = &'a FocusCharge>,
    extension_columns: &[&str],
    out: &mut dyn Write,
) -> Result<(), CmsError> {
    let mut seen = BTreeSet::new();
    for name in extension_columns {
        let reason = if !is_extension(name) {
            "FOCUS extension columns must start with x_"
        } else if !seen.insert(*name) {
            "extension column named twice"
        } else {
            continue;
        };
        return Err(CmsError::InvalidValue {
            at: Location::whole(OUTPUT),
            text: (*name).to_owned(),
            reason: reason.to_owned(),
        });
    }
    let io_error =
        |error: &dyn fmt::Display| CmsError::Io { at: Location::whole(OUTPUT), message: error.to_string() };
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(out);
    let header = FOCUS_COLUMNS.iter().chain(extension_columns);
    writer.write_record(header).map_err(|error| io_error(&error))?;
    let mut cells: Vec<Cow<'_, str>> = Vec::with_capacity(COLUMN_COUNT + extension_columns.len());
    for (index, row) in rows.into_iter().enumerate() {
        cells.clear();
        for &column in Column::ALL {
            cells.push(cell(row, column, index)?);
        }
        for name in extension_columns {
            cells.push(Cow::Borrowed(row.extensions.get(*name).map_or("", String::as_str)));
        }
        writer.write_record(cells.iter().map(|cell| cell.as_bytes())).map_err(|error| io_error(&error))?;
    }
    writer.flush().map_err(|error| io_error(&error))
}

fn is_extension(name: &str) -> bool {
    name.starts_with("x_") || name.starts_with("X_")
}

/// Where each column sits in a header: a CSV file's first record, or a Parquet file's top-level fields.
pub(crate) struct Layout {
    focus: [Option<usize>; COLUMN_COUNT],
    extensions: Vec<(String, usize)>,
    ignored: Vec<String>,
}

impl Layout {
    /// The layout of a header whose column names are `names` (surrounding whitespace ignored); `at` locates
    /// the header in errors.
    ///
    /// Errors: `bad_header` when a [`MANDATORY_COLUMNS`] entry is missing; `invalid_value` for a column
    /// named twice.
    pub(crate) fn new(names: Vec<String>, at: &Location) -> Result<Self, CmsError> {
        let names: Vec<String> = names.into_iter().map(|name| name.trim().to_owned()).collect();
        let mut layout = Self { focus: [None; COLUMN_COUNT], extensions: Vec::new(), ignored: Vec::new() };
        let mut extension_names = BTreeSet::new();
        for (index, name) in names.iter().enumerate() {
            let known = Column::ALL.iter().copied().find(|column| column.name().eq_ignore_ascii_case(name));
            let duplicate = match known {
                Some(column) => layout.focus[column as usize].replace(index).is_some(),
                None if is_extension(name) => {
                    layout.extensions.push((name.clone(), index));
                    !extension_names.insert(name.as_str())
                }
                None => {
                    layout.ignored.push(name.clone());
                    false
                }
            };
            if duplicate {
                return Err(CmsError::InvalidValue {
                    at: at.clone(),
                    text: name.clone(),
                    reason: "column appears more than once in the header".into(),
                });
            }
        }
        let missing = Column::ALL.iter().find(|column| {
            column.presence() == Presence::Mandatory && layout.focus[**column as usize].is_none()
        });
        if let Some(column) = missing {
            return Err(CmsError::BadHeader {
                at: at.clone(),
                expected: column.name().to_owned(),
                found: names,
            });
        }
        Ok(layout)
    }

    /// Whether the column at header position `index` is read: a FOCUS 1.2 column or an `x_` column (the
    /// ignored ones are not).
    #[cfg(feature = "parquet")]
    pub(crate) fn is_read(&self, index: usize) -> bool {
        self.focus.contains(&Some(index)) || self.extensions.iter().any(|(_, position)| *position == index)
    }
}

/// The cells of one row, by header position: what both FOCUS readers hand to [`charge_of_row`]. A cell is
/// its text as bytes (checked for UTF-8 where it is read); an empty cell, or a position the row does not
/// have, is null.
pub(crate) trait RowCells {
    /// The cell at header position `index`.
    fn cell(&self, index: usize) -> &[u8];
}

impl RowCells for csv::ByteRecord {
    fn cell(&self, index: usize) -> &[u8] {
        self.get(index).unwrap_or_default()
    }
}

/// The one validation of a FOCUS row, whatever file it came from: every column typed as the module
/// documentation says, every error located at `at` and naming the column.
pub(crate) fn charge_of_row(
    row: &dyn RowCells,
    layout: &Layout,
    at: &Location,
) -> Result<FocusCharge, CmsError> {
    Cells { row, layout, at }.charge()
}

/// The cells of one row, read by column.
struct Cells<'a> {
    row: &'a dyn RowCells,
    layout: &'a Layout,
    at: &'a Location,
}

impl Cells<'_> {
    fn at(&self) -> Location {
        self.at.clone()
    }

    fn raw(&self, column: Column) -> &[u8] {
        self.layout.focus[column as usize].map_or(&[], |index| self.row.cell(index))
    }

    fn utf8<'b>(&self, bytes: &'b [u8], name: &str) -> Result<&'b str, CmsError> {
        std::str::from_utf8(bytes)
            .map_err(|_| CmsError::BadRecord { at: self.at(), reason: format!("{name} is not valid UTF-8") })
    }

    /// The cell as text, `None` when null (empty or the column is absent). Text is kept as written.
    fn text(&self, column: Column) -> Result<Option<&str>, CmsError> {
        let bytes = self.raw(column);
        if bytes.is_empty() {
            return Ok(None);
        }
        self.utf8(bytes, column.name()).map(Some)
    }

    /// The cell trimmed, for typed values; `None` when null or blank.
    fn trimmed(&self, column: Column) -> Result<Option<&str>, CmsError> {
        Ok(self.text(column)?.map(str::trim).filter(|text| !text.is_empty()))
    }

    fn string(&self, column: Column) -> Result<Option<String>, CmsError> {
        Ok(self.text(column)?.map(str::to_owned))
    }

    fn required<T>(&self, column: Column, value: Option<T>) -> Result<T, CmsError> {
        value.ok_or_else(|| CmsError::BadRecord {
            at: self.at(),
            reason: format!("{} is empty; FOCUS {FOCUS_VERSION} requires a value", column.name()),
        })
    }

    fn required_string(&self, column: Column) -> Result<String, CmsError> {
        let value = self.string(column)?;
        self.required(column, value)
    }

    fn decimal(&self, column: Column) -> Result<Option<Decimal>, CmsError> {
        let Some(text) = self.trimmed(column)? else { return Ok(None) };
        parse_focus_decimal(text).map(Some).ok_or_else(|| CmsError::BadDecimal {
            at: self.at(),
            field: column.name().to_owned(),
            text: excerpt(text),
        })
    }

    fn required_decimal(&self, column: Column) -> Result<Decimal, CmsError> {
        let value = self.decimal(column)?;
        self.required(column, value)
    }

    fn instant(&self, column: Column) -> Result<DateTime<Utc>, CmsError> {
        let text = self.trimmed(column)?;
        let text = self.required(column, text)?;
        parse_focus_timestamp(text).ok_or_else(|| CmsError::BadTimestamp {
            at: self.at(),
            field: column.name().to_owned(),
            text: excerpt(text),
        })
    }

    fn choice<T>(
        &self,
        column: Column,
        parse: fn(&str) -> Option<T>,
        allowed: fn() -> String,
    ) -> Result<Option<T>, CmsError> {
        let Some(text) = self.trimmed(column)? else { return Ok(None) };
        parse(text).map(Some).ok_or_else(|| CmsError::InvalidValue {
            at: self.at(),
            text: excerpt(text),
            reason: format!("{} must be one of: {}", column.name(), allowed()),
        })
    }

    fn required_choice<T>(
        &self,
        column: Column,
        parse: fn(&str) -> Option<T>,
        allowed: fn() -> String,
    ) -> Result<T, CmsError> {
        let value = self.choice(column, parse, allowed)?;
        self.required(column, value)
    }

    fn currency(&self, column: Column) -> Result<Currency, CmsError> {
        let text = self.trimmed(column)?;
        let text = self.required(column, text)?;
        Currency::from_code(text).ok_or_else(|| CmsError::InvalidValue {
            at: self.at(),
            text: excerpt(text),
            reason: format!("{} must be an ISO 4217 currency code (three letters)", column.name()),
        })
    }

    fn key_values(&self, column: Column) -> Result<BTreeMap<String, JsonScalar>, CmsError> {
        let Some(text) = self.trimmed(column)? else { return Ok(BTreeMap::new()) };
        if text == "null" {
            return Ok(BTreeMap::new());
        }
        serde_json::from_str::<KeyValues>(text).map(|object| object.0).map_err(|error| CmsError::BadJson {
            at: self.at(),
            message: format!("{}: {error}", column.name()),
        })
    }

    fn extensions(&self) -> Result<BTreeMap<String, String>, CmsError> {
        let mut values = BTreeMap::new();
        for (name, index) in &self.layout.extensions {
            let bytes = self.row.cell(*index);
            if !bytes.is_empty() {
                values.insert(name.clone(), self.utf8(bytes, name)?.to_owned());
            }
        }
        Ok(values)
    }

    fn charge(&self) -> Result<FocusCharge, CmsError> {
        use Column as C;
        Ok(FocusCharge {
            availability_zone: self.string(C::AvailabilityZone)?,
            billed_cost: self.required_decimal(C::BilledCost)?,
            billing_account_id: self.required_string(C::BillingAccountId)?,
            billing_account_name: self.string(C::BillingAccountName)?,
            billing_account_type: self.string(C::BillingAccountType)?,
            billing_currency: self.currency(C::BillingCurrency)?,
            billing_period_end: self.instant(C::BillingPeriodEnd)?,
            billing_period_start: self.instant(C::BillingPeriodStart)?,
            capacity_reservation_id: self.string(C::CapacityReservationId)?,
            capacity_reservation_status: self.choice(
                C::CapacityReservationStatus,
                UtilizationStatus::parse,
                UtilizationStatus::allowed,
            )?,
            charge_category: self.required_choice(
                C::ChargeCategory,
                ChargeCategory::parse,
                ChargeCategory::allowed,
            )?,
            charge_class: self.choice(C::ChargeClass, ChargeClass::parse, ChargeClass::allowed)?,
            charge_description: self.string(C::ChargeDescription)?,
            charge_frequency: self.choice(
                C::ChargeFrequency,
                ChargeFrequency::parse,
                ChargeFrequency::allowed,
            )?,
            charge_period_end: self.instant(C::ChargePeriodEnd)?,
            charge_period_start: self.instant(C::ChargePeriodStart)?,
            commitment_discount_category: self.choice(
                C::CommitmentDiscountCategory,
                CommitmentDiscountCategory::parse,
                CommitmentDiscountCategory::allowed,
            )?,
            commitment_discount_id: self.string(C::CommitmentDiscountId)?,
            commitment_discount_name: self.string(C::CommitmentDiscountName)?,
            commitment_discount_quantity: self.decimal(C::CommitmentDiscountQuantity)?,
            commitment_discount_status: self.choice(
                C::CommitmentDiscountStatus,
                UtilizationStatus::parse,
                UtilizationStatus::allowed,
            )?,
            commitment_discount_type: self.string(C::CommitmentDiscountType)?,
            commitment_discount_unit: self.string(C::CommitmentDiscountUnit)?,
            consumed_quantity: self.decimal(C::ConsumedQuantity)?,
            consumed_unit: self.string(C::ConsumedUnit)?,
            contracted_cost: self.required_decimal(C::ContractedCost)?,
            contracted_unit_price: self.decimal(C::ContractedUnitPrice)?,
            effective_cost: self.required_decimal(C::EffectiveCost)?,
            invoice_id: self.string(C::InvoiceId)?,
            invoice_issuer_name: self.required_string(C::InvoiceIssuerName)?,
            list_cost: self.required_decimal(C::ListCost)?,
            list_unit_price: self.decimal(C::ListUnitPrice)?,
            pricing_category: self.choice(
                C::PricingCategory,
                PricingCategory::parse,
                PricingCategory::allowed,
            )?,
            pricing_currency: self.string(C::PricingCurrency)?,
            pricing_currency_contracted_unit_price: self.decimal(C::PricingCurrencyContractedUnitPrice)?,
            pricing_currency_effective_cost: self.decimal(C::PricingCurrencyEffectiveCost)?,
            pricing_currency_list_unit_price: self.decimal(C::PricingCurrencyListUnitPrice)?,
            pricing_quantity: self.decimal(C::PricingQuantity)?,
            pricing_unit: self.string(C::PricingUnit)?,
            provider_name: self.required_string(C::ProviderName)?,
            publisher_name: self.required_string(C::PublisherName)?,
            region_id: self.string(C::RegionId)?,
            region_name: self.string(C::RegionName)?,
            resource_id: self.string(C::ResourceId)?,
            resource_name: self.string(C::ResourceName)?,
            resource_type: self.string(C::ResourceType)?,
            service_category: self.required_choice(
                C::ServiceCategory,
                ServiceCategory::parse,
                ServiceCategory::allowed,
            )?,
            service_name: self.required_string(C::ServiceName)?,
            service_subcategory: self.string(C::ServiceSubcategory)?,
            sku_id: self.string(C::SkuId)?,
            sku_meter: self.string(C::SkuMeter)?,
            sku_price_details: self.key_values(C::SkuPriceDetails)?,
            sku_price_id: self.string(C::SkuPriceId)?,
            sub_account_id: self.string(C::SubAccountId)?,
            sub_account_name: self.string(C::SubAccountName)?,
            sub_account_type: self.string(C::SubAccountType)?,
            tags: self.key_values(C::Tags)?,
            extensions: self.extensions()?,
        })
    }
}

/// Running counts for the summary.
#[derive(Default)]
pub(crate) struct Tally {
    rows: u64,
    by_category: BTreeMap<ChargeCategory, u64>,
    currencies: BTreeMap<String, Currency>,
}

impl Tally {
    /// Count one row.
    pub(crate) fn add(&mut self, charge: &FocusCharge) {
        self.rows += 1;
        *self.by_category.entry(charge.charge_category).or_default() += 1;
        let code = charge.billing_currency.code();
        if !self.currencies.contains_key(code) {
            self.currencies.insert(code.to_owned(), charge.billing_currency);
        }
    }

    /// The summary of a read through `layout`.
    pub(crate) fn summary(self, layout: Layout) -> FocusReadSummary {
        FocusReadSummary {
            rows: self.rows,
            rows_by_charge_category: self.by_category,
            currencies: self.currencies.into_values().collect(),
            extension_columns: layout.extensions.into_iter().map(|(name, _)| name).collect(),
            ignored_columns: layout.ignored,
        }
    }
}

/// The text of one cell of `row`.
fn cell(row: &FocusCharge, column: Column, index: usize) -> Result<Cow<'_, str>, CmsError> {
    use Column as C;
    fn text(value: Option<&str>) -> Cow<'_, str> {
        Cow::Borrowed(value.unwrap_or_default())
    }
    fn decimal(value: Option<Decimal>) -> Cow<'static, str> {
        value.map_or(Cow::Borrowed(""), |value| Cow::Owned(value.to_string()))
    }
    fn choice(value: Option<&'static str>) -> Cow<'static, str> {
        Cow::Borrowed(value.unwrap_or_default())
    }
    Ok(match column {
        C::AvailabilityZone => text(row.availability_zone.as_deref()),
        C::BilledCost => decimal(Some(row.billed_cost)),
        C::BillingAccountId => Cow::Borrowed(row.billing_account_id.as_str()),
        C::BillingAccountName => text(row.billing_account_name.as_deref()),
        C::BillingAccountType => text(row.billing_account_type.as_deref()),
        C::BillingCurrency => Cow::Borrowed(row.billing_currency.code()),
        C::BillingPeriodEnd => Cow::Owned(format_instant(row.billing_period_end)),
        C::BillingPeriodStart => Cow::Owned(format_instant(row.billing_period_start)),
        C::CapacityReservationId => text(row.capacity_reservation_id.as_deref()),
        C::CapacityReservationStatus => {
            choice(row.capacity_reservation_status.map(UtilizationStatus::as_str))
        }
        C::ChargeCategory => Cow::Borrowed(row.charge_category.as_str()),
        C::ChargeClass => choice(row.charge_class.map(ChargeClass::as_str)),
        C::ChargeDescription => text(row.charge_description.as_deref()),
        C::ChargeFrequency => choice(row.charge_frequency.map(ChargeFrequency::as_str)),
        C::ChargePeriodEnd => Cow::Owned(format_instant(row.charge_period_end)),
        C::ChargePeriodStart => Cow::Owned(format_instant(row.charge_period_start)),
        C::CommitmentDiscountCategory => {
            choice(row.commitment_discount_category.map(CommitmentDiscountCategory::as_str))
        }
        C::CommitmentDiscountId => text(row.commitment_discount_id.as_deref()),
        C::CommitmentDiscountName => text(row.commitment_discount_name.as_deref()),
        C::CommitmentDiscountQuantity => decimal(row.commitment_discount_quantity),
        C::CommitmentDiscountStatus => choice(row.commitment_discount_status.map(UtilizationStatus::as_str)),
        C::CommitmentDiscountType => text(row.commitment_discount_type.as_deref()),
        C::CommitmentDiscountUnit => text(row.commitment_discount_unit.as_deref()),
        C::ConsumedQuantity => decimal(row.consumed_quantity),
        C::ConsumedUnit => text(row.consumed_unit.as_deref()),
        C::ContractedCost => decimal(Some(row.contracted_cost)),
        C::ContractedUnitPrice => decimal(row.contracted_unit_price),
        C::EffectiveCost => decimal(Some(row.effective_cost)),
        C::InvoiceId => text(row.invoice_id.as_deref()),
        C::InvoiceIssuerName => Cow::Borrowed(row.invoice_issuer_name.as_str()),
        C::ListCost => decimal(Some(row.list_cost)),
        C::ListUnitPrice => decimal(row.list_unit_price),
        C::PricingCategory => choice(row.pricing_category.map(PricingCategory::as_str)),
        C::PricingCurrency => text(row.pricing_currency.as_deref()),
        C::PricingCurrencyContractedUnitPrice => decimal(row.pricing_currency_contracted_unit_price),
        C::PricingCurrencyEffectiveCost => decimal(row.pricing_currency_effective_cost),
        C::PricingCurrencyListUnitPrice => decimal(row.pricing_currency_list_unit_price),
        C::PricingQuantity => decimal(row.pricing_quantity),
        C::PricingUnit => text(row.pricing_unit.as_deref()),
        C::ProviderName => Cow::Borrowed(row.provider_name.as_str()),
        C::PublisherName => Cow::Borrowed(row.publisher_name.as_str()),
        C::RegionId => text(row.region_id.as_deref()),
        C::RegionName => text(row.region_name.as_deref()),
        C::ResourceId => text(row.resource_id.as_deref()),
        C::ResourceName => text(row.resource_name.as_deref()),
        C::ResourceType => text(row.resource_type.as_deref()),
        C::ServiceCategory => Cow::Borrowed(row.service_category.as_str()),
        C::ServiceName => Cow::Borrowed(row.service_name.as_str()),
        C::ServiceSubcategory => text(row.service_subcategory.as_deref()),
        C::SkuId => text(row.sku_id.as_deref()),
        C::SkuMeter => text(row.sku_meter.as_deref()),
        C::SkuPriceDetails => Cow::Owned(key_values_json(&row.sku_price_details, column, index)?),
        C::SkuPriceId => text(row.sku_price_id.as_deref()),
        C::SubAccountId => text(row.sub_account_id.as_deref()),
        C::SubAccountName => text(row.sub_account_name.as_deref()),
        C::SubAccountType => text(row.sub_account_type.as_deref()),
        C::Tags => Cow::Owned(key_values_json(&row.tags, column, index)?),
    })
}

fn format_instant(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Compact JSON of a key-value column, keys in order; empty for an empty map (null).
fn key_values_json(
    values: &BTreeMap<String, JsonScalar>,
    column: Column,
    index: usize,
) -> Result<String, CmsError> {
    if values.is_empty() {
        return Ok(String::new());
    }
    let invalid = |text: &str, reason: String| CmsError::InvalidValue {
        at: Location::record(OUTPUT, u64::try_from(index).unwrap_or(u64::MAX)),
        text: excerpt(text),
        reason,
    };
    let quoted = |text: &str| {
        serde_json::to_string(text).map_err(|error| invalid(text, format!("{}: {error}", column.name())))
    };
    let mut json = String::from("{");
    for (key, value) in values {
        if json.len() > 1 {
            json.push(',');
        }
        json.push_str(&quoted(key)?);
        json.push(':');
        match value {
            JsonScalar::String(text) => json.push_str(&quoted(text)?),
            JsonScalar::Number(text) if is_json_number(text) => json.push_str(text),
            JsonScalar::Number(text) => {
                return Err(invalid(
                    text,
                    format!("{} value of {key:?} is not a JSON number", column.name()),
                ));
            }
            JsonScalar::Bool(flag) => json.push_str(if *flag { "true" } else { "false" }),
            JsonScalar::Null => json.push_str("null"),
        }
    }
    json.push('}');
    Ok(json)
}

/// Whether `text` is a JSON number (RFC 8259): `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(text: &str) -> bool {
    fn digits(bytes: &[u8]) -> usize {
        bytes.iter().take_while(|byte| byte.is_ascii_digit()).count()
    }
    let mut rest = text.as_bytes();
    if let [b'-', tail @ ..] = rest {
        rest = tail;
    }
    match rest {
        [b'0', tail @ ..] => rest = tail,
        [b'1'..=b'9', ..] => rest = &rest[digits(rest)..],
        _ => return false,
    }
    if let [b'.', tail @ ..] = rest {
        let count = digits(tail);
        if count == 0 {
            return false;
        }
        rest = &tail[count..];
    }
    if let [b'e' | b'E', tail @ ..] = rest {
        let tail = match tail {
            [b'+' | b'-', signed @ ..] => signed,
            _ => tail,
        };
        let count = digits(tail);
        if count == 0 {
            return false;
        }
        rest = &tail[count..];
    }
    rest.is_empty()
}

/// A JSON object whose values are scalars, keys unique (FOCUS key-value format).
struct KeyValues(BTreeMap<String, JsonScalar>);

impl<'de> serde::Deserialize<'de> for KeyValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = KeyValues;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyValues, A::Error> {
                let mut values = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let raw: &'de RawValue = map.next_value()?;
                    let value = scalar(raw.get()).map_err(de::Error::custom)?;
                    if values.insert(key, value).is_some() {
                        return Err(de::Error::custom("a key appears twice"));
                    }
                }
                Ok(KeyValues(values))
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Classify one raw JSON value (already validated by the parser).
fn scalar(raw: &str) -> Result<JsonScalar, String> {
    let raw = raw.trim();
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str(raw).map(JsonScalar::String).map_err(|error| error.to_string()),
        Some(b'{' | b'[') => {
            Err("values must be strings, numbers, true, false or null, not objects or arrays".into())
        }
        Some(b't') => Ok(JsonScalar::Bool(true)),
        Some(b'f') => Ok(JsonScalar::Bool(false)),
        Some(b'n') => Ok(JsonScalar::Null),
        _ => Ok(JsonScalar::Number(raw.to_owned())),
    }
}

/// A decimal from its text, exactly: plain notation through [`parse_decimal`]; exponent notation
/// (`1.5E-7`) by shifting the scale of the exact mantissa. `None` when the value does not fit a
/// [`Decimal`] exactly (more than 28 decimal places, or beyond its range).
fn parse_focus_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    let Some(split) = text.find(['e', 'E']) else { return parse_decimal(text) };
    let mantissa = parse_decimal(&text[..split])?;
    let exponent: i64 = text[split + 1..].parse().ok()?;
    if mantissa.is_zero() {
        return Some(Decimal::ZERO);
    }
    let shift = |mantissa: Decimal| {
        let scale = i64::from(mantissa.scale()).checked_sub(exponent)?;
        if scale >= 0 {
            let mut value = mantissa;
            value.set_scale(u32::try_from(scale).ok()?).ok()?;
            Some(value)
        } else {
            let power = u32::try_from(-scale).ok().filter(|power| *power <= Decimal::MAX_SCALE)?;
            let mut integer = mantissa;
            integer.set_scale(0).ok()?;
            integer.checked_mul(Decimal::try_from_i128_with_scale(10_i128.checked_pow(power)?, 0).ok()?)
        }
    };
    // Trailing zeros of the mantissa may be what pushes the scale past 28: retry without them.
    shift(mantissa).or_else(|| shift(mantissa.normalize()))
}

/// An instant from FOCUS date-time text (`YYYY-MM-DDTHH:mm:ssZ`, any RFC 3339 offset, a zero fraction of
/// a second), also in the shapes exports use: `YYYY-MM-DDTHH:mmZ` (no seconds) and `BigQuery`'s
/// `YYYY-MM-DD HH:MM:SS UTC`.
fn parse_focus_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Some(instant) = parse_timestamp(text) {
        return Some(instant);
    }
    if let Some(naive) = text.strip_suffix(" UTC") {
        return parse_timestamp(naive.trim_end());
    }
    let bytes = text.as_bytes();
    let minutes_only = bytes.len() > 16
        && bytes[13] == b':'
        && bytes[14].is_ascii_digit()
        && bytes[15].is_ascii_digit()
        && matches!(bytes[16], b'Z' | b'z' | b'+' | b'-');
    if minutes_only && text.is_char_boundary(16) {
        return parse_timestamp(&format!("{}:00{}", &text[..16], &text[16..]));
    }
    None
}

/// A value for an error message, cut to a readable length.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str_exact(text).unwrap()
    }

    #[test]
    fn column_table_matches_the_specification_lists() {
        assert_eq!(FOCUS_COLUMNS.len(), 57);
        let mut sorted = FOCUS_COLUMNS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, FOCUS_COLUMNS, "columns are written in alphabetical order");
        let mandatory: Vec<&str> = Column::ALL
            .iter()
            .filter(|column| column.presence() == Presence::Mandatory)
            .map(|column| column.name())
            .collect();
        assert_eq!(mandatory, MANDATORY_COLUMNS);
        for (index, column) in Column::ALL.iter().enumerate() {
            assert_eq!(*column as usize, index);
            assert_eq!(column.name(), FOCUS_COLUMNS[index]);
        }
    }

    #[test]
    fn decimals_are_exact_in_both_notations() {
        let cases = [
            ("1.5E-7", "0.00000015"),
            ("1.5e-7", "0.00000015"),
            ("-2.25E+3", "-2250"),
            ("1.20E1", "12.0"),
            ("7E0", "7"),
            ("0E-40", "0"),
            ("1.1368683772161603E-12", "0.0000000000011368683772161603"),
            ("10000000000000000000000000000E-28", "1"),
            ("  42.10 ", "42.10"),
            ("+3", "3"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_focus_decimal(text), Some(dec(expected)), "{text}");
        }
        assert_eq!(parse_focus_decimal("1.20E1").unwrap().to_string(), "12.0");
        for bad in [
            "",
            "E5",
            "1E",
            "1E+",
            "1e5.5",
            "1.1368683772161603E-13",
            "1E29",
            "1E-4294967296",
            "9E99999999999999999999",
            "1_000",
            "0x10",
            "NaN",
            "1,5",
        ] {
            assert_eq!(parse_focus_decimal(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_in_export_shapes() {
        let expected = DateTime::from_timestamp(1_746_057_600, 0).unwrap(); // 2025-05-01T00:00:00Z
        for text in [
            "2025-05-01T00:00:00Z",
            "2025-05-01T00:00:00.000Z",
            "2025-05-01T00:00Z",
            "2025-05-01 00:00:00 UTC",
            "2025-04-30T17:00:00-07:00",
            "2025-04-30T17:00-07:00",
            " 2025-05-01T00:00:00Z ",
        ] {
            assert_eq!(parse_focus_timestamp(text), Some(expected), "{text}");
        }
        assert_eq!(format_instant(expected), "2025-05-01T00:00:00Z");
        let bad_texts =
            ["", "2025-05-01T00:00:00.5Z", "2025-13-01T00:00:00Z", "yesterday", "2025-05-01T00:0é:00Z"];
        for bad in bad_texts {
            assert_eq!(parse_focus_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn json_numbers() {
        for good in ["0", "-0", "12", "-1.5", "1e5", "1E+5", "2.5e-3", "0.0"] {
            assert!(is_json_number(good), "{good}");
        }
        for bad in ["", "-", "01", "1.", ".5", "+1", "1e", "1e+", "NaN", "1 ", "0x1"] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn key_values_keep_scalars_exactly() {
        let object: KeyValues =
            serde_json::from_str(r#"{"env":"prod","flag":true,"off":false,"n":1.10,"gone":null}"#).unwrap();
        assert_eq!(object.0["env"], JsonScalar::String("prod".into()));
        assert_eq!(object.0["flag"], JsonScalar::Bool(true));
        assert_eq!(object.0["off"], JsonScalar::Bool(false));
        assert_eq!(object.0["n"], JsonScalar::Number("1.10".into()));
        assert_eq!(object.0["gone"], JsonScalar::Null);
        assert_eq!(
            key_values_json(&object.0, Column::Tags, 0).unwrap(),
            r#"{"env":"prod","flag":true,"gone":null,"n":1.10,"off":false}"#
        );
        for bad in [r#"{"a":{"b":1}}"#, r#"{"a":[1]}"#, r#"{"a":1,"a":2}"#, "[]", "\"x\"", "{"] {
            assert!(serde_json::from_str::<KeyValues>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt("abc"), "abc");
        let long = "é".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 3);
    }
}
