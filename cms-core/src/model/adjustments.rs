//! Credits and discounts: validated data that the billing code applies to priced lines.
//!
//! # Discounts
//! A [`Discount`] takes a fraction (`0 < percent <= 1`) off the exact amount of every priced line it
//! matches: a line of its scope (a tenant, a subscription, or one resource of a subscription) and of a meter
//! its filter passes, for usage starting in `[from, until)`. Discounts do not stack: a line gets the one
//! [`best_discount`] picks, the most specific scope first (resource, then subscription, then tenant), then
//! the largest percent, then the smallest id, so the outcome never depends on the order discounts were
//! entered. The discount is taken from the exact amount, before a line is rounded for a document.
//!
//! # Credits
//! A [`Credit`] is an amount of money that reduces the charge it scopes in a billing period: a tenant's
//! whole invoice, one subscription's lines, or one (subscription, meter) line. It applies after discounts,
//! and never takes a charge below zero; the part of a credit a period does not use is lost, not carried
//! over. Credits apply in [`Credit::order`] (most specific scope first, then id), each from what the earlier
//! ones left. A credit's currency must be the invoice's (billing refuses a mismatch). A one-off credit
//! applies in one calendar month; a recurring one in every month from `from` to `until`, both inclusive.
//!
//! Ids, subscription ids, tenant ids and resource URIs compare ignoring ASCII case.

use std::cmp::Reverse;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};
use crate::model::meter::MeterId;
use crate::model::money::Currency;
use crate::model::price_book::MeterFilter;
use crate::model::time::{Instant, Period};

fn invalid(source: String, text: impl Into<String>, reason: &str) -> CmsError {
    CmsError::InvalidValue { at: Location::whole(source), text: text.into(), reason: reason.to_owned() }
}

fn check_ids<'a>(source: &str, ids: impl IntoIterator<Item = &'a str>) -> Result<(), CmsError> {
    if ids.into_iter().any(|id| id.trim().is_empty()) {
        return Err(invalid(source.to_owned(), "", "ids and resource URIs must not be empty"));
    }
    Ok(())
}

/// What a discount covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountScope {
    /// Every subscription of a tenant.
    Tenant(String),
    /// One subscription.
    Subscription(String),
    /// One resource of a subscription.
    Resource {
        /// The subscription.
        subscription: String,
        /// The resource URI (instance id) as the usage reports it.
        resource_uri: String,
    },
}

impl DiscountScope {
    /// 2 for a resource, 1 for a subscription, 0 for a tenant: higher is more specific.
    pub fn specificity(&self) -> u8 {
        match self {
            Self::Tenant(_) => 0,
            Self::Subscription(_) => 1,
            Self::Resource { .. } => 2,
        }
    }
}

/// A percentage off matching lines for a time (see the module docs for the rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discount {
    /// Stable id.
    pub id: String,
    /// What it covers.
    pub scope: DiscountScope,
    /// Which meters.
    #[serde(default)]
    pub meters: MeterFilter,
    /// The fraction taken off (0.1 for 10 %): above 0, at most 1.
    pub percent: Decimal,
    /// First instant of usage it covers.
    pub from: Instant,
    /// First instant of usage it no longer covers; `None`: open-ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Instant>,
}

impl Discount {
    /// A checked discount.
    pub fn new(
        id: &str,
        scope: DiscountScope,
        meters: MeterFilter,
        percent: Decimal,
        from: Instant,
        until: Option<Instant>,
    ) -> Result<Self, CmsError> {
        let discount = Self { id: id.to_owned(), scope, meters, percent, from, until };
        discount.validate()?;
        Ok(discount)
    }

    /// Check the id and scope ids, `0 < percent <= 1`, and `from < until`.
    pub fn validate(&self) -> Result<(), CmsError> {
        let source = format!("discount {}", self.id);
        let scope_ids: Vec<&str> = match &self.scope {
            DiscountScope::Tenant(id) | DiscountScope::Subscription(id) => vec![id],
            DiscountScope::Resource { subscription, resource_uri } => vec![subscription, resource_uri],
        };
        check_ids(&source, std::iter::once(self.id.as_str()).chain(scope_ids))?;
        if self.percent <= Decimal::ZERO || self.percent > Decimal::ONE {
            return Err(invalid(
                source,
                self.percent.to_string(),
                "a discount percent is above 0 and at most 1",
            ));
        }
        if let Some(until) = self.until.filter(|until| *until <= self.from) {
            return Err(invalid(source, until.to_rfc3339(), "a discount ends after it starts"));
        }
        Ok(())
    }

    /// Whether it covers usage starting at `at` (`from <= at < until`).
    pub fn applies_at(&self, at: Instant) -> bool {
        self.from <= at && self.until.is_none_or(|until| at < until)
    }

    /// Whether it covers a line of `meter` for `subscription` of `tenant`, with the line's resource URI
    /// when the line is per resource (`None`: a line over the whole subscription, which a resource
    /// discount does not cover).
    pub fn matches(
        &self,
        subscription: &str,
        tenant: &str,
        resource_uri: Option<&str>,
        meter: MeterId,
    ) -> bool {
        let in_scope = match &self.scope {
            DiscountScope::Tenant(id) => id.eq_ignore_ascii_case(tenant),
            DiscountScope::Subscription(id) => id.eq_ignore_ascii_case(subscription),
            DiscountScope::Resource { subscription: id, resource_uri: uri } => {
                id.eq_ignore_ascii_case(subscription)
                    && resource_uri.is_some_and(|resource_uri| uri.eq_ignore_ascii_case(resource_uri))
            }
        };
        in_scope && self.meters.matches(meter)
    }
}

/// The one discount a line gets: among those that apply at `at` and match, the most specific scope, then
/// the largest percent, then the smallest id.
pub fn best_discount<'a>(
    discounts: &'a [Discount],
    subscription: &str,
    tenant: &str,
    resource_uri: Option<&str>,
    meter: MeterId,
    at: Instant,
) -> Option<&'a Discount> {
    discounts
        .iter()
        .filter(|discount| {
            discount.applies_at(at) && discount.matches(subscription, tenant, resource_uri, meter)
        })
        .min_by_key(|discount| {
            (Reverse(discount.scope.specificity()), Reverse(discount.percent), &discount.id)
        })
}

/// What a credit reduces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditScope {
    /// A tenant's whole invoice.
    Tenant(String),
    /// One subscription's lines.
    Subscription(String),
    /// The line of one meter of one subscription.
    MeterLine {
        /// The subscription.
        subscription: String,
        /// The meter.
        meter: MeterId,
    },
}

impl CreditScope {
    /// 2 for a meter line, 1 for a subscription, 0 for a tenant: higher is more specific.
    pub fn specificity(&self) -> u8 {
        match self {
            Self::Tenant(_) => 0,
            Self::Subscription(_) => 1,
            Self::MeterLine { .. } => 2,
        }
    }

    /// Whether a line of `meter` for `subscription` of `tenant` is part of the charge this scope reduces.
    pub fn covers(&self, subscription: &str, tenant: &str, meter: MeterId) -> bool {
        match self {
            Self::Tenant(id) => id.eq_ignore_ascii_case(tenant),
            Self::Subscription(id) => id.eq_ignore_ascii_case(subscription),
            Self::MeterLine { subscription: id, meter: line_meter } => {
                id.eq_ignore_ascii_case(subscription) && *line_meter == meter
            }
        }
    }
}

/// When a credit applies, in calendar months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recurrence {
    /// Once, in this month.
    OneOff {
        /// The month.
        period: Period,
    },
    /// Every month from `from` to `until`, both inclusive (`None`: with no end).
    Recurring {
        /// The first month.
        from: Period,
        /// The last month.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<Period>,
    },
}

/// An amount of money that offsets a charge (see the module docs for the rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    /// Stable id.
    pub id: String,
    /// What it reduces.
    pub scope: CreditScope,
    /// The amount per month it applies in; above 0.
    pub amount: Decimal,
    /// Currency of the amount (the invoice's).
    pub currency: Currency,
    /// When it applies.
    pub recurrence: Recurrence,
    /// Why it was granted, for the invoice and the audit trail.
    pub reason: String,
}

fn is_calendar_month(period: &Period) -> bool {
    use chrono::Datelike;
    Period::month(period.start.year(), period.start.month()).is_ok_and(|month| month == *period)
}

impl Credit {
    /// Check the ids, `amount > 0`, and that the recurrence names calendar months in order.
    pub fn validate(&self) -> Result<(), CmsError> {
        let source = format!("credit {}", self.id);
        let scope_id = match &self.scope {
            CreditScope::Tenant(id)
            | CreditScope::Subscription(id)
            | CreditScope::MeterLine { subscription: id, .. } => id,
        };
        check_ids(&source, [self.id.as_str(), scope_id.as_str()])?;
        if self.amount <= Decimal::ZERO {
            return Err(invalid(source, self.amount.to_string(), "a credit amount is above 0"));
        }
        let months: Vec<&Period> = match &self.recurrence {
            Recurrence::OneOff { period } => vec![period],
            Recurrence::Recurring { from, until } => std::iter::once(from).chain(until.as_ref()).collect(),
        };
        if let Some(period) = months.iter().find(|period| !is_calendar_month(period)) {
            return Err(invalid(source, period.to_string(), "a credit applies in calendar months (UTC)"));
        }
        if let Recurrence::Recurring { from, until: Some(until) } = &self.recurrence
            && until.start < from.start
        {
            return Err(invalid(
                source,
                until.to_string(),
                "a recurring credit ends at or after its first month",
            ));
        }
        Ok(())
    }

    /// Whether it applies in the billing period `period`: the period starts in one of its months.
    pub fn applies_in(&self, period: &Period) -> bool {
        match &self.recurrence {
            Recurrence::OneOff { period: month } => month.contains(period.start),
            Recurrence::Recurring { from, until } => {
                from.start <= period.start && until.is_none_or(|until| period.start < until.end)
            }
        }
    }

    /// The order credits apply in: most specific scope first, then by id.
    pub fn order(credits: &mut [&Credit]) {
        credits.sort_by(|left, right| {
            (Reverse(left.scope.specificity()), &left.id)
                .cmp(&(Reverse(right.scope.specificity()), &right.id))
        });
    }

    /// The part of this credit a charge uses: `min(amount, charge)`, 0 for a charge at or below zero.
    pub fn used_against(&self, charge: Decimal) -> Decimal {
        self.amount.min(charge.max(Decimal::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::model::money::parse_decimal;
    use crate::model::time::parse_timestamp;

    fn dec(text: &str) -> Decimal {
        parse_decimal(text).unwrap()
    }

    fn at(text: &str) -> Instant {
        parse_timestamp(text).unwrap()
    }

    fn month(text: &str) -> Period {
        text.parse().unwrap()
    }

    const VM: MeterId = MeterId::from_u128(1);
    const DISK: MeterId = MeterId::from_u128(2);

    fn discount(id: &str, scope: DiscountScope, percent: &str) -> Discount {
        Discount::new(id, scope, MeterFilter::All, dec(percent), at("2026-01-01T00:00:00Z"), None).unwrap()
    }

    #[test]
    fn discounts_validate() {
        let scope = DiscountScope::Tenant("t1".into());
        let from = at("2026-01-01T00:00:00Z");
        for percent in ["0", "-0.1", "1.01"] {
            let error =
                Discount::new("d", scope.clone(), MeterFilter::All, dec(percent), from, None).unwrap_err();
            assert_eq!(error.code(), "invalid_value", "{percent}");
        }
        assert!(Discount::new("d", scope.clone(), MeterFilter::All, dec("1"), from, None).is_ok());
        assert!(Discount::new("d", scope.clone(), MeterFilter::All, dec("0.1"), from, Some(from)).is_err());
        assert!(Discount::new("", scope, MeterFilter::All, dec("0.1"), from, None).is_err());
        assert!(
            Discount::new(
                "d",
                DiscountScope::Subscription(" ".into()),
                MeterFilter::All,
                dec("0.1"),
                from,
                None
            )
            .is_err()
        );
    }

    #[test]
    fn discounts_match_scope_meter_and_time() {
        let mut only_vm = discount("d", DiscountScope::Subscription("SUB-1".into()), "0.1");
        only_vm.meters = MeterFilter::Meters(BTreeSet::from([VM]));
        only_vm.until = Some(at("2026-02-01T00:00:00Z"));
        assert!(only_vm.matches("sub-1", "t1", None, VM));
        assert!(!only_vm.matches("sub-1", "t1", None, DISK));
        assert!(!only_vm.matches("sub-2", "t1", None, VM));
        assert!(only_vm.applies_at(at("2026-01-01T00:00:00Z")));
        assert!(only_vm.applies_at(at("2026-01-31T23:00:00Z")));
        assert!(!only_vm.applies_at(at("2026-02-01T00:00:00Z")));
        assert!(!only_vm.applies_at(at("2025-12-31T23:00:00Z")));
        let resource = DiscountScope::Resource {
            subscription: "sub-1".into(),
            resource_uri: "/Subscriptions/sub-1/VM1".into(),
        };
        let resource = discount("r", resource, "0.2");
        assert!(resource.matches("SUB-1", "t1", Some("/subscriptions/sub-1/vm1"), DISK));
        assert!(!resource.matches("sub-1", "t1", None, DISK));
        assert!(!resource.matches("sub-1", "t1", Some("/subscriptions/sub-1/vm2"), DISK));
        assert!(discount("t", DiscountScope::Tenant("T1".into()), "0.1").matches("x", "t1", None, DISK));
    }

    #[test]
    fn the_most_specific_then_largest_discount_wins() {
        let discounts = vec![
            discount("tenant-big", DiscountScope::Tenant("t1".into()), "0.5"),
            discount("sub-small", DiscountScope::Subscription("s1".into()), "0.05"),
            discount("sub-large", DiscountScope::Subscription("s1".into()), "0.1"),
            discount("sub-large-too", DiscountScope::Subscription("s1".into()), "0.1"),
        ];
        let now = at("2026-03-01T00:00:00Z");
        let best = |subscription: &str| {
            best_discount(&discounts, subscription, "t1", None, VM, now).map(|d| d.id.as_str())
        };
        assert_eq!(best("s1"), Some("sub-large"));
        assert_eq!(best("s2"), Some("tenant-big"));
        assert_eq!(best_discount(&discounts, "s2", "t2", None, VM, now), None);
        assert_eq!(best_discount(&discounts, "s1", "t1", None, VM, at("2025-01-01T00:00:00Z")), None);
    }

    fn credit(recurrence: Recurrence) -> Credit {
        Credit {
            id: "c".into(),
            scope: CreditScope::Subscription("s1".into()),
            amount: dec("50"),
            currency: Currency::USD,
            recurrence,
            reason: "outage".into(),
        }
    }

    #[test]
    fn credits_apply_in_their_months() {
        let one_off = credit(Recurrence::OneOff { period: month("2026-03") });
        one_off.validate().unwrap();
        assert!(one_off.applies_in(&month("2026-03")));
        assert!(!one_off.applies_in(&month("2026-02")));
        assert!(!one_off.applies_in(&month("2026-04")));
        let recurring =
            credit(Recurrence::Recurring { from: month("2026-03"), until: Some(month("2026-05")) });
        recurring.validate().unwrap();
        let applies: Vec<bool> = ["2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
            .iter()
            .map(|m| recurring.applies_in(&month(m)))
            .collect();
        assert_eq!(applies, [false, true, true, true, false]);
        let open = credit(Recurrence::Recurring { from: month("2026-03"), until: None });
        assert!(open.applies_in(&month("2030-01")));
        assert!(!open.applies_in(&month("2026-02")));
    }

    #[test]
    fn credits_validate() {
        let mut bad = credit(Recurrence::Recurring { from: month("2026-05"), until: Some(month("2026-03")) });
        assert_eq!(bad.validate().unwrap_err().code(), "invalid_value");
        bad.recurrence = Recurrence::OneOff {
            period: Period::new(at("2026-03-02T00:00:00Z"), at("2026-03-09T00:00:00Z")).unwrap(),
        };
        assert!(bad.validate().is_err());
        bad.recurrence = Recurrence::OneOff { period: month("2026-03") };
        bad.validate().unwrap();
        bad.amount = dec("0");
        assert!(bad.validate().is_err());
    }

    #[test]
    fn credits_cover_their_scope_and_never_go_below_zero() {
        let line = CreditScope::MeterLine { subscription: "S1".into(), meter: VM };
        assert!(line.covers("s1", "t1", VM));
        assert!(!line.covers("s1", "t1", DISK));
        assert!(CreditScope::Tenant("t1".into()).covers("s9", "T1", DISK));
        let used = credit(Recurrence::OneOff { period: month("2026-03") });
        assert_eq!(used.used_against(dec("30")), dec("30"));
        assert_eq!(used.used_against(dec("80")), dec("50"));
        assert_eq!(used.used_against(dec("-5")), dec("0"));
        let mut tenant = used.clone();
        tenant.id = "a".into();
        tenant.scope = CreditScope::Tenant("t1".into());
        let mut meter_line = used.clone();
        meter_line.id = "z".into();
        meter_line.scope = line;
        let mut order = vec![&tenant, &used, &meter_line];
        Credit::order(&mut order);
        let ids: Vec<&str> = order.iter().map(|credit| credit.id.as_str()).collect();
        assert_eq!(ids, ["z", "c", "a"]);
    }
}
