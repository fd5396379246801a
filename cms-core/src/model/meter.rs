//! Meter ids and the catalogue of real Azure Stack Hub meters.
//!
//! Meter ids compare case-insensitively, with or without dashes; the canonical form is upper-case
//! 8-4-4-4-12. Internally a meter id is its 128-bit value, so comparing and hashing are cheap and
//! spelling cannot matter. The catalogue is compiled into the crate from
//! `../shared/reference/azure-stack-hub-usage.md` section 2 (84 meters); meters outside it are allowed
//! (custom App Service worker tiers get generated ids) and flagged as unknown by [`MeterId::info`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A meter id: a GUID, compared by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MeterId(u128);

/// The text is not a GUID (32 hex digits, with dashes at 8-4-4-4-12 or none at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadMeterId;

impl MeterId {
    /// The id with this 128-bit value.
    pub const fn from_u128(value: u128) -> Self {
        Self(value)
    }

    /// The 128-bit value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// Parse a meter id from bytes: 32 hex digits, or 36 characters with dashes at 8-4-4-4-12.
    /// Case does not matter. This is the hot path of every usage parser, so it works on bytes with a
    /// lookup table and no branches per digit beyond the validity check.
    pub fn parse_bytes(text: &[u8]) -> Result<Self, BadMeterId> {
        let mut digits = [0u8; 32];
        match text.len() {
            32 => digits.copy_from_slice(text),
            36 => {
                if text[8] != b'-' || text[13] != b'-' || text[18] != b'-' || text[23] != b'-' {
                    return Err(BadMeterId);
                }
                digits[..8].copy_from_slice(&text[..8]);
                digits[8..12].copy_from_slice(&text[9..13]);
                digits[12..16].copy_from_slice(&text[14..18]);
                digits[16..20].copy_from_slice(&text[19..23]);
                digits[20..].copy_from_slice(&text[24..]);
            }
            _ => return Err(BadMeterId),
        }
        let mut value: u128 = 0;
        let mut invalid = 0u8;
        for byte in digits {
            let nibble = HEX[usize::from(byte)];
            invalid |= nibble;
            value = (value << 4) | u128::from(nibble & 0x0F);
        }
        if invalid & 0x10 == 0 { Ok(Self(value)) } else { Err(BadMeterId) }
    }

    /// The canonical spelling: upper-case, dashed 8-4-4-4-12.
    pub fn canonical(self) -> String {
        self.to_string()
    }

    /// What the catalogue knows of this meter; `None` for an unknown meter.
    pub fn info(self) -> Option<&'static MeterInfo> {
        CATALOGUE.binary_search_by_key(&self, |info| info.id).ok().map(|index| &CATALOGUE[index])
    }
}

/// Hex digit values by byte; 0x10 marks a byte that is not a hex digit.
const HEX: [u8; 256] = {
    let mut table = [0x10u8; 256];
    let mut digit: u8 = 0;
    while digit < 10 {
        table[(b'0' + digit) as usize] = digit;
        digit += 1;
    }
    let mut letter: u8 = 0;
    while letter < 6 {
        table[(b'a' + letter) as usize] = 10 + letter;
        table[(b'A' + letter) as usize] = 10 + letter;
        letter += 1;
    }
    table
};

impl FromStr for MeterId {
    type Err = BadMeterId;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse_bytes(text.as_bytes())
    }
}

impl fmt::Display for MeterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = [0u8; 36];
        let mut position = 0;
        for nibble in 0..32 {
            if matches!(nibble, 8 | 12 | 16 | 20) {
                out[position] = b'-';
                position += 1;
            }
            let shift = (31 - nibble) * 4;
            out[position] = DIGITS[((self.0 >> shift) & 0xF) as usize];
            position += 1;
        }
        // The buffer holds only ASCII hex digits and dashes.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for MeterId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MeterId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(|_| serde::de::Error::custom(format!("bad meter id {text:?}")))
    }
}

/// The service family a meter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// IP addresses.
    Network,
    /// Blob, table and queue storage.
    Storage,
    /// Virtual machines.
    Compute,
    /// Managed disks and snapshots.
    ManagedDisks,
    /// SQL Server and `MySQL` resource providers.
    SqlMySql,
    /// Key Vault.
    KeyVault,
    /// App Service and Functions.
    AppService,
}

/// Facts about a meter that change how it is rated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MeterFlags(u8);

impl MeterFlags {
    /// No flags.
    pub const NONE: Self = Self(0);
    /// Microsoft lists the meter as deprecated or historical; it may still appear in old data.
    pub const DEPRECATED: Self = Self(1);
    /// Counts what other meters already count (VM size hours vs the core-hour meters); not priced by default.
    pub const DOUBLE_COUNTS: Self = Self(2);
    /// At Daily granularity the API reports value x hours (IP and SQL/MySQL meters): a day of 2 IP addresses
    /// is 48, a day of a 10,240 MB database is 245,760, the sum of that day's hourly records. Informational:
    /// rating sums quantities whatever their granularity, so a daily record already bills exactly as its
    /// hourly records would (the meter's unit is per hour) and nothing consults this flag to convert. It tells
    /// readers of the catalogue (reports, UIs) why a daily quantity is 24 times the hourly one.
    pub const DAILY_VALUE_TIMES_HOURS: Self = Self(4);
    /// Microsoft's charge to the operator, not tenant consumption (App Service vCore-hours).
    pub const OPERATOR_COST: Self = Self(8);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// One catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterInfo {
    /// The meter id.
    pub id: MeterId,
    /// Microsoft's name for the meter.
    pub name: &'static str,
    /// The unit of quantity.
    pub unit: &'static str,
    /// Service family.
    pub category: Category,
    /// Rating facts.
    pub flags: MeterFlags,
}

impl MeterInfo {
    /// Microsoft lists the meter as deprecated.
    pub const fn deprecated(&self) -> bool {
        self.flags.contains(MeterFlags::DEPRECATED)
    }
    /// The meter double counts with others and is not priced by default.
    pub const fn double_counts(&self) -> bool {
        self.flags.contains(MeterFlags::DOUBLE_COUNTS)
    }
}

const fn meter(
    id: &str,
    name: &'static str,
    unit: &'static str,
    category: Category,
    flags: MeterFlags,
) -> MeterInfo {
    MeterInfo { id: MeterId(const_guid(id)), name, unit, category, flags }
}

/// Parse a canonical dashed GUID at compile time (the catalogue is a `static`, so a typo fails the build).
const fn const_guid(text: &str) -> u128 {
    let bytes = text.as_bytes();
    assert!(bytes.len() == 36, "catalogue ids are dashed 8-4-4-4-12");
    let mut value: u128 = 0;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if !matches!(index, 8 | 13 | 18 | 23) {
            let digit = match byte {
                b'0'..=b'9' => byte - b'0',
                b'A'..=b'F' => byte - b'A' + 10,
                _ => panic!("catalogue ids are upper-case hex"),
            };
            value = (value << 4) | digit as u128;
        }
        index += 1;
    }
    value
}

/// Every meter of the catalogue, sorted by id (a test checks the order).
pub fn catalogue() -> &'static [MeterInfo] {
    &CATALOGUE
}

/// Sorted by id at build time is not possible for a const array without a build script, so the
/// list is kept sorted by hand and `catalogue_is_sorted` guards it.
static CATALOGUE: [MeterInfo; 84] = [
    meter(
        "043757FC-049F-4E8B-8379-45BB203C36B1",
        "P40",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "06BDE724-9F94-43C0-84C3-D0FC54538369",
        "P30",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "09F8879E-87E9-4305-A572-4B7BE209F857",
        "BlockBlobCapacity",
        "GB-hours",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "1083B9DB-E9BB-24BE-A5E9-D6FDD0DDEFE6",
        "Large Standard App Service Hours",
        "1 hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "108FA95B-BE0D-4CD9-96E8-5B0D59505DF1",
        "ActualStandardSnapshotSize",
        "GB-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "1273B16F-8458-4C34-8CE2-A515DE551EF6",
        "ActualPremiumDiskSize",
        "byte-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "14496322-39CB-4D33-B67D-39B0C2DE0C8E",
        "S40",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "190C935E-9ADA-48FF-9AB8-56EA1CF9ADAA",
        "App Service",
        "vCore-hours",
        Category::AppService,
        MeterFlags::OPERATOR_COST,
    ),
    meter(
        "1B77D90F-427B-4435-B4F1-D78ADEC53222",
        "S6",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "1B8C1DEC-EE42-414B-AA36-6229CF199370",
        "TableDataTransOut",
        "GB egress",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "264ACB47-AD38-47F8-ADD3-47F01DC4F473",
        "SNI SSL",
        "per SNI binding",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "26BD6580-C3BD-4E7E-8092-58B28EB1BB94",
        "Small Premium App Service Hours",
        "hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "27B01104-E0DF-4F30-A171-F1B00ECB76B3",
        "Medium Basic App Service Hours",
        "hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "2C354225-B2FE-42E5-AD89-14F0EA302C87",
        "Advanced keys transactions",
        "10K transactions",
        Category::KeyVault,
        MeterFlags::NONE,
    ),
    meter(
        "3023FEF4-ECA5-4D7B-87B3-CFBC061931E8",
        "BlobDataTransOut",
        "GB egress",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "380874F9-300C-48E0-95A0-D2D9A21ADE8F",
        "S4",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "43626C21-849B-40FE-8C01-E19666059C38",
        "P50",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "43DAF82B-4618-444A-B994-40C23F7CD438",
        "BlobTransactions",
        "requests in 10,000s",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "50A1AEAF-8ECA-48A0-8973-A5B3077FEE0D",
        "TableDataTransIn",
        "GB ingress",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "50DB6A92-5DFF-4C9B-8238-8EA5FB1BE107",
        "Large Basic App Service Hours",
        "hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "518B412B-1927-4F25-985F-4AEA24E55C4F",
        "P6",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "539CDEC7-B4F5-49F6-AAC4-1F15CFF0EDA9",
        "Free App Service Hours",
        "1 hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "578AE51D-4EF9-42F9-85AE-42B52D3D83AC",
        "ActualPremiumSnapshotSize",
        "GB-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "5887D39B-0253-4E12-83C7-03E1A93DFFD9",
        "External Egress Bandwidth",
        "GB",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "5938F8DA-0ECD-4C48-8D5A-C7C6C23546BE",
        "S20",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "5B1DB88A-8596-4002-8052-347947C26940",
        "S30",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "5C105F5F-CBDF-435C-B49B-3C7174856DCC",
        "P4",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "5CA1CBB9-6F14-4E76-8BE8-1CA91547965E",
        "ActualPremiumSnapshotSize",
        "GB-month",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ), // same conflict as the meter above
    meter(
        "5CFB1FED-0902-49E3-8217-9ADD946FD624",
        "P10",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "5D76E09F-4567-452A-94CC-7D1F097761F0",
        "S4",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "60B42D72-DC1C-472C-9895-6C516277EDB4",
        "IP SSL",
        "per IP-based binding",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "67CC4AFC-0691-48E1-A4B8-D744D1FEDBDE",
        "Functions Requests",
        "10 requests",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "6DAB500F-A4FD-49C4-956D-229BB9C8C793",
        "VM size hours",
        "VM-hours",
        Category::Compute,
        MeterFlags::DOUBLE_COUNTS,
    ),
    meter(
        "73215A6C-FA54-4284-B9C1-7E8EC871CC5B",
        "Web Process",
        "(unit not stated)",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "75D4B707-1027-4403-9986-6EC7C05579C8",
        "ActualStandardSnapshotSize",
        "GB-month",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ), // FAQ: deprecated; Usagesummary.ps1 lists it without the label
    meter(
        "7660B45B-B29D-49CB-B816-59F30FBAB011",
        "P4",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "7705A158-BD8B-4B2B-B4C2-0782343B81E6",
        "S30",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "7BA084EC-EF9C-4D64-A179-7732C6CB5E28",
        "ActualStandardDiskSize",
        "GB-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "817007FD-A077-477F-BC01-B876F27205FD",
        "P6",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "83A2A13E-4788-78DD-5D55-2831B68ED825",
        "Medium Standard App Service Hours",
        "1 hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "88039D51-A206-3A89-E9DE-C5117E2D10A6",
        "Small Standard App Service Hours",
        "1 hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "88EA9228-457A-4091-ADC9-AD5194F30B6E",
        "S20",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "89009682-DF7F-44FE-AEB1-63FBA3DDBF4C",
        "ActualStandardSnapshotSize",
        "byte-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "8A409390-1913-40AE-917B-08D0F16F3C38",
        "ActualStandardDiskSize",
        "byte-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "8C003D25-AFB4-4F21-B1FA-86A5B0F001C7",
        "S50",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "8DE91C94-F740-4D9A-B665-BD5974FA08D4",
        "P15",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "957E9F36-2C14-45A1-B6A1-1723EF71A01D",
        "Shared App Service Hours",
        "1 hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "95B0C03F-8A82-4524-8961-CCFBF575F536",
        "ActualPremiumSnapshotSize",
        "byte-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "9764F92C-E44A-498E-8DC1-AAD66587A810",
        "BlobDataTransIn",
        "GB ingress",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "9A8CAEDD-1195-4CD5-80B4-A4C22F9302B8",
        "S15",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "9CD92D4C-BAFD-4492-B278-BEDC2DE8232A",
        "Windows VM Size Hours",
        "vCore-hours",
        Category::Compute,
        MeterFlags::NONE,
    ),
    meter(
        "9E2739BA-8674-4796-B465-F64674B822BA",
        "Dynamic IP Address Usage",
        "IP addresses (per hour)",
        Category::Network,
        MeterFlags::DAILY_VALUE_TIMES_HOURS,
    ),
    meter(
        "9F502103-ADF4-4488-B494-456C95D23A9F",
        "P30",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "A1CBA406-E83E-45C3-BD36-485191C215D9",
        "Medium Premium App Service Hours",
        "hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "A2104A9D-5A78-4F8F-A2DF-034BD43D602D",
        "Large Premium App Service Hours",
        "hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "A54899DD-458E-4A40-9ABD-F57CAFD936A7",
        "S50",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "A91EED6C-DBBC-4532-859C-86DE776433A4",
        "Extra Large Premium App Service Hours",
        "hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "B03C6AE7-B080-4BFA-84A3-22C800F315C6",
        "QueueCapacity",
        "GB-hours",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "B4438D5D-453B-4EE1-B42A-DC72E377F1E4",
        "TableCapacity",
        "GB-hours",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "B5C15376-6C94-4FDD-B655-1A69D138ACA3",
        "PageBlobCapacity",
        "GB-hours",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "B9CB2D1A-84C2-4275-AA8B-70D2145D59AA",
        "P20",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "B9FF3CD0-28AA-4762-84BB-FF8FBAEA6A90",
        "TableTransactions",
        "requests in 10,000s",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "C0342C6F-810B-4942-85D3-6EAA561B6570",
        "P50",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "C7E7839C-293B-4761-AE4C-848EDA91130B",
        "P20",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "CBCFEF9A-B91F-4597-A4D3-01FE334BED82",
        "DatabaseSizeHourSqlMeter",
        "MB-hours",
        Category::SqlMySql,
        MeterFlags::DAILY_VALUE_TIMES_HOURS,
    ),
    meter(
        "CDC0F53A-62A9-4472-A06C-E99A23B02907",
        "P15",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "D1D04836-075C-4F27-BF65-0A1130EC60ED",
        "Functions - Compute",
        "GB-s",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "D5F7731B-F639-404A-89D0-E46186E22C8D",
        "S10",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "D9AAC1EB-A5D1-42F2-B617-9E3EA94FED88",
        "S40",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "DAEF389A-06E5-4684-A7F7-8813D9F792D5",
        "ActualPremiumDiskSize",
        "GB-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "DB658D61-EF2D-4888-9843-72F5C774FD3C",
        "Small Basic App Service Hours",
        "hour",
        Category::AppService,
        MeterFlags::NONE,
    ),
    meter(
        "DC9FC6A9-0782-432A-B8DC-978130457494",
        "S6",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "DD0A10BA-A5D6-4CB6-88C0-7D585CEF9FC2",
        "QueueDataTransOut",
        "GB egress",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "E518E809-E369-4A45-9274-2017B29FFF25",
        "QueueDataTransIn",
        "GB ingress",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "E554B6BC-96CD-4938-A5B5-0DA990278519",
        "P10",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "E5572FCE-9F58-49D7-840C-B168C0F01FFF",
        "S10",
        "disks-hours",
        Category::ManagedDisks,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "E6D8CFCD-7734-495E-B1CC-5AB0B9C24BD3",
        "DatabaseSizeHourMySqlMeter",
        "MB-hours",
        Category::SqlMySql,
        MeterFlags::DAILY_VALUE_TIMES_HOURS,
    ),
    meter(
        "EB43DD12-1AA6-4C4B-872C-FAF15A6785EA",
        "QueueTransactions",
        "requests in 10,000s",
        Category::Storage,
        MeterFlags::NONE,
    ),
    meter(
        "EBF13B9F-B3EA-46FE-BF54-396E93D48AB4",
        "Key Vault transactions",
        "requests in 10,000s",
        Category::KeyVault,
        MeterFlags::NONE,
    ),
    meter(
        "EECB2657-E7E6-47F9-9B00-7F58FA8839CB",
        "P40",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
    meter(
        "F114CB19-EA64-40B5-BCD7-AEE474B62853",
        "Public IP Address Usage",
        "IP address",
        Category::Network,
        MeterFlags::DEPRECATED,
    ),
    meter(
        "F271A8A3-88C4-4D93-956A-063E1D2FA80B",
        "Static IP Address Usage",
        "IP addresses (per hour)",
        Category::Network,
        MeterFlags::DAILY_VALUE_TIMES_HOURS,
    ),
    meter(
        "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5",
        "Base VM Size Hours",
        "vCore-hours",
        Category::Compute,
        MeterFlags::NONE,
    ),
    meter(
        "FF85EF31-DA5B-4EAC-95DD-A69D6F97B18A",
        "S15",
        "disks-month",
        Category::ManagedDisks,
        MeterFlags::NONE,
    ),
];

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn catalogue_is_sorted_and_unique() {
        assert!(CATALOGUE.windows(2).all(|pair| pair[0].id < pair[1].id));
    }

    #[test]
    fn spellings_are_one_meter() {
        let dashed: MeterId = "09f8879e-87e9-4305-a572-4b7be209f857".parse().unwrap();
        let bare: MeterId = "09F8879E87E94305A5724B7BE209F857".parse().unwrap();
        assert_eq!(dashed, bare);
        assert_eq!(dashed.canonical(), "09F8879E-87E9-4305-A572-4B7BE209F857");
        assert_eq!(dashed.info().unwrap().name, "BlockBlobCapacity");
    }

    #[test]
    fn catalogue_facts() {
        let vm_hours: MeterId = "6DAB500F-A4FD-49C4-956D-229BB9C8C793".parse().unwrap();
        assert!(vm_hours.info().unwrap().double_counts());
        let static_ip: MeterId = "F271A8A388C44D93956A063E1D2FA80B".parse().unwrap();
        assert!(static_ip.info().unwrap().flags.contains(MeterFlags::DAILY_VALUE_TIMES_HOURS));
        let old_s4: MeterId = "5d76e09f-4567-452a-94cc-7d1f097761f0".parse().unwrap();
        assert!(old_s4.info().unwrap().deprecated());
        let custom: MeterId = "00000000-0000-0000-0000-000000000001".parse().unwrap();
        assert!(custom.info().is_none());
    }

    #[test]
    fn rejects_non_guids() {
        for text in [
            "",
            "xyz",
            "09f8879e-87e9-4305-a572-4b7be209f85",
            "09f8879e_87e9_4305_a572_4b7be209f857",
            "09f8879e87e9-4305-a572-4b7be209f8577",
            "g9f8879e87e94305a5724b7be209f857",
        ] {
            assert_eq!(text.parse::<MeterId>(), Err(BadMeterId), "{text}");
        }
    }

    proptest! {
        /// Any spelling (case, dashes) of any id parses back to the same id, and the canonical form
        /// is a fixed point.
        #[test]
        fn normalisation_round_trip(value: u128, dashed: bool, lower_mask: u32) {
            let id = MeterId::from_u128(value);
            let canonical = id.canonical();
            let mut spelled: String = if dashed { canonical.clone() } else { canonical.replace('-', "") };
            spelled = spelled.chars().enumerate()
                .map(|(i, c)| if lower_mask >> (i % 32) & 1 == 1 { c.to_ascii_lowercase() } else { c })
                .collect();
            let parsed: MeterId = spelled.parse().unwrap();
            prop_assert_eq!(parsed, id);
            prop_assert_eq!(parsed.canonical().parse::<MeterId>().unwrap().canonical(), canonical);
        }
    }
}
