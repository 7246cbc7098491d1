//! The demo's topics, selectors and event types: what a page or a script
//! subscribes to.

/// What every demo topic starts with.
pub const BASE: &str = "https://demo.tidings.dev";

/// The SSE `type` of a stock price.
pub const PRICE: &str = "price";
/// The SSE `type` of a match score.
pub const SCORE: &str = "score";
/// The SSE `type` of a notification.
pub const NOTIFICATION: &str = "notification";
/// The SSE `type` of a clock tick.
pub const CLOCK: &str = "clock";

/// The URI template that matches every price topic.
pub const PRICES_SELECTOR: &str = "https://demo.tidings.dev/prices/{symbol}";
/// The URI template that matches every match topic.
pub const SCORES_SELECTOR: &str = "https://demo.tidings.dev/scores/{match}";
/// The notification topic (an exact topic is a selector too).
pub const NOTIFICATIONS: &str = "https://demo.tidings.dev/notifications";
/// The clock topic.
pub const CLOCK_TOPIC: &str = "https://demo.tidings.dev/clock";

/// The selectors the demo page subscribes with: together they match every
/// demo topic.
pub const SELECTORS: [&str; 4] = [PRICES_SELECTOR, SCORES_SELECTOR, NOTIFICATIONS, CLOCK_TOPIC];

/// The topic of `symbol`'s price.
pub fn price(symbol: &str) -> String {
    format!("{BASE}/prices/{symbol}")
}

/// The topic of the match `slug`.
pub fn score(slug: &str) -> String {
    format!("{BASE}/scores/{slug}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_expansions_of_the_selectors() {
        assert_eq!(price("ACME"), "https://demo.tidings.dev/prices/ACME");
        assert!(PRICES_SELECTOR.starts_with(BASE));
        assert!(SCORES_SELECTOR.starts_with(BASE));
        assert_eq!(score("a-v-b"), "https://demo.tidings.dev/scores/a-v-b");
        assert!(NOTIFICATIONS.starts_with(BASE) && CLOCK_TOPIC.starts_with(BASE));
    }
}
