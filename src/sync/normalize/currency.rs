//! Currencies: webCRM's configurable currency names to ISO 4217 codes.
//!
//! A webCRM installation may name its currencies anything (system codes such as `"00"` are
//! common), so the operator supplies a mapping in `WEBCRM_CURRENCY_MAP`; values that already are
//! ISO codes need no mapping.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("the record has no currency")]
    Missing,
    #[error(
        "webCRM currency {0:?} is neither an ISO 4217 code nor mapped; \
         add it to WEBCRM_CURRENCY_MAP (for example \"{0}=EUR\")"
    )]
    Unmapped(String),
    #[error("WEBCRM_CURRENCY_MAP entry {0:?} is not of the form name=ISO")]
    Malformed(String),
    #[error("WEBCRM_CURRENCY_MAP entry {entry:?}: {code:?} is not an ISO 4217 currency code")]
    NotIso { entry: String, code: String },
    #[error("WEBCRM_CURRENCY_MAP maps {0:?} more than once")]
    Duplicate(String),
}

/// The active ISO 4217 alphabetic codes (list one), including fund codes and precious metals.
/// Withdrawn codes (HRK, ANG, SLL, ZWL, CUC …) are left out because Chargebee cannot bill in
/// them, as are XTS (testing) and XXX (no currency), which name no currency at all.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK",
    "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD",
    "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD",
    "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT",
    "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP",
    "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS",
    "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST",
    "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR", "XOF", "XPD", "XPF",
    "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG",
];

/// Whether `code` is an active ISO 4217 alphabetic code (case-insensitive, untrimmed).
pub fn is_iso_code(code: &str) -> bool {
    code.len() == 3 && ISO_4217.iter().any(|c| c.eq_ignore_ascii_case(code))
}

/// webCRM currency names to ISO codes, as configured by the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrencyTable {
    /// Name as configured → upper-case ISO code.
    exact: HashMap<String, String>,
    /// Lower-cased name → ISO code; where names differ only by case, the first one listed.
    folded: HashMap<String, String>,
}

impl CurrencyTable {
    /// Parses `"00=DKK, 01=EUR,USD-name=USD"`: comma-separated `name=ISO` entries with
    /// whitespace around names and codes ignored. Empty entries (a trailing comma) are skipped so
    /// that an empty or blank spec is an empty table.
    pub fn parse(spec: &str) -> Result<CurrencyTable, CurrencyError> {
        let mut table = CurrencyTable::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, code)) = entry.split_once('=') else {
                return Err(CurrencyError::Malformed(entry.to_string()));
            };
            let (name, code) = (name.trim(), code.trim());
            if name.is_empty() {
                return Err(CurrencyError::Malformed(entry.to_string()));
            }
            if !is_iso_code(code) {
                return Err(CurrencyError::NotIso {
                    entry: entry.to_string(),
                    code: code.to_string(),
                });
            }
            let code = code.to_ascii_uppercase();
            if table.exact.insert(name.to_string(), code.clone()).is_some() {
                return Err(CurrencyError::Duplicate(name.to_string()));
            }
            table.folded.entry(name.to_lowercase()).or_insert(code);
        }
        Ok(table)
    }

    /// The ISO code for a webCRM currency value. A configured name wins over everything (exact
    /// spelling first, then ignoring case), so an installation can even remap an ISO code;
    /// otherwise an ISO code passes through upper-cased.
    pub fn resolve(&self, raw: &str) -> Result<String, CurrencyError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(CurrencyError::Missing);
        }
        if let Some(code) = self.exact.get(value) {
            return Ok(code.clone());
        }
        if let Some(code) = self.folded.get(&value.to_lowercase()) {
            return Ok(code.clone());
        }
        if is_iso_code(value) {
            return Ok(value.to_ascii_uppercase());
        }
        Err(CurrencyError::Unmapped(value.to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }

    pub fn len(&self) -> usize {
        self.exact.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_codes() {
        assert!(ISO_4217.len() >= 175, "{}", ISO_4217.len());
        let mut sorted = ISO_4217.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ISO_4217.len(), "duplicates in the list");
        assert!(ISO_4217
            .iter()
            .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
        for code in [
            "DKK", "eur", "Usd", "SEK", "NOK", "GBP", "JPY", "KWD", "CHF", "XCG", "SLE",
        ] {
            assert!(is_iso_code(code), "{code}");
        }
        for code in [
            "", "00", "DK", "DKKK", "ABC", "HRK", "XXX", "XTS", " DKK", "kr.",
        ] {
            assert!(!is_iso_code(code), "{code}");
        }
    }

    #[test]
    fn parse_trims_and_upper_cases() {
        let table = CurrencyTable::parse(" 00=DKK, 01 = eur ,USD-name=USD,").unwrap();
        assert_eq!(table.len(), 3);
        assert_eq!(table.resolve("00").unwrap(), "DKK");
        assert_eq!(table.resolve("01").unwrap(), "EUR");
        assert_eq!(table.resolve("USD-name").unwrap(), "USD");
    }

    #[test]
    fn empty_spec_is_an_empty_table() {
        assert!(CurrencyTable::parse("").unwrap().is_empty());
        assert!(CurrencyTable::parse("  ").unwrap().is_empty());
        assert!(CurrencyTable::parse(" , ").unwrap().is_empty());
        assert_eq!(CurrencyTable::parse("").unwrap(), CurrencyTable::default());
    }

    #[test]
    fn parse_rejects_bad_entries_by_name() {
        let err = CurrencyTable::parse("00=DKK, 01=Euro").unwrap_err();
        assert_eq!(
            err,
            CurrencyError::NotIso {
                entry: "01=Euro".into(),
                code: "Euro".into()
            }
        );
        assert!(err.to_string().contains("\"01=Euro\""), "{err}");
        assert_eq!(
            CurrencyTable::parse("00=DKK, 01").unwrap_err(),
            CurrencyError::Malformed("01".into())
        );
        assert_eq!(
            CurrencyTable::parse("=DKK").unwrap_err(),
            CurrencyError::Malformed("=DKK".into())
        );
        assert!(matches!(
            CurrencyTable::parse("00=").unwrap_err(),
            CurrencyError::NotIso { .. }
        ));
        assert_eq!(
            CurrencyTable::parse("00=DKK, 00=EUR").unwrap_err(),
            CurrencyError::Duplicate("00".into())
        );
    }

    #[test]
    fn mapped_name_wins_exact_then_case_insensitive() {
        let table = CurrencyTable::parse("kr=DKK, KR=NOK, Euro=EUR, usd=CAD").unwrap();
        assert_eq!(table.resolve("kr").unwrap(), "DKK");
        assert_eq!(table.resolve("KR").unwrap(), "NOK");
        // Neither spelling matches exactly: the first one listed decides.
        assert_eq!(table.resolve("Kr").unwrap(), "DKK");
        assert_eq!(table.resolve("EURO").unwrap(), "EUR");
        assert_eq!(table.resolve(" euro ").unwrap(), "EUR");
        // A mapping beats an ISO code of the same spelling.
        assert_eq!(table.resolve("USD").unwrap(), "CAD");
    }

    #[test]
    fn iso_codes_pass_through_upper_cased() {
        let table = CurrencyTable::default();
        assert_eq!(table.resolve("DKK").unwrap(), "DKK");
        assert_eq!(table.resolve(" sek ").unwrap(), "SEK");
        assert_eq!(table.resolve("Eur").unwrap(), "EUR");
    }

    #[test]
    fn unmapped_names_the_value_and_the_setting() {
        let table = CurrencyTable::parse("00=DKK").unwrap();
        let err = table.resolve(" 01 ").unwrap_err();
        assert_eq!(err, CurrencyError::Unmapped("01".into()));
        let message = err.to_string();
        assert!(message.contains("\"01\""), "{message}");
        assert!(message.contains("WEBCRM_CURRENCY_MAP"), "{message}");
        assert_eq!(
            table.resolve("Danish kroner").unwrap_err(),
            CurrencyError::Unmapped("Danish kroner".into())
        );
    }

    #[test]
    fn blank_is_missing() {
        let table = CurrencyTable::parse("00=DKK").unwrap();
        assert_eq!(table.resolve("").unwrap_err(), CurrencyError::Missing);
        assert_eq!(table.resolve(" \t ").unwrap_err(), CurrencyError::Missing);
    }
}
