//! The org's API usage as Salesforce reports it on every response.

/// `Sforce-Limit-Info: api-usage=USED/MAX`: the org's rolling 24-hour request count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    /// Parses the header value; other comma-separated items
    /// (`per-app-api-usage=...`) are ignored.
    pub fn parse_header(value: &str) -> Option<ApiUsage> {
        value.split(',').find_map(|item| {
            let rest = item.trim().strip_prefix("api-usage=")?;
            let (used, max) = rest.split_once('/')?;
            Some(ApiUsage {
                used: used.trim().parse().ok()?,
                max: max.trim().parse().ok()?,
            })
        })
    }

    /// Fraction of the org's quota used, 0.0 when the max is unknown (zero).
    pub fn fraction(&self) -> f64 {
        if self.max == 0 {
            0.0
        } else {
            self.used as f64 / self.max as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limit_info() {
        assert_eq!(
            ApiUsage::parse_header("api-usage=18/15000"),
            Some(ApiUsage {
                used: 18,
                max: 15000
            })
        );
        assert_eq!(
            ApiUsage::parse_header("api-usage=25/5000, per-app-api-usage=17/250(appName=sample)"),
            Some(ApiUsage {
                used: 25,
                max: 5000
            })
        );
        assert_eq!(
            ApiUsage::parse_header("per-app-api-usage=17/250(appName=x), api-usage=1/2"),
            Some(ApiUsage { used: 1, max: 2 })
        );
        assert_eq!(ApiUsage::parse_header("api-usage=abc/15000"), None);
        assert_eq!(ApiUsage::parse_header(""), None);
        assert_eq!(ApiUsage { used: 80, max: 100 }.fraction(), 0.8);
    }
}
