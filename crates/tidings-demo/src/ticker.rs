//! The stock ticker: a few made-up symbols, each a random walk in cents.

use serde::Serialize;
use tidings_core::Update;

use crate::feed::{Feed, Tick, json_update};
use crate::topics;

/// The listed companies: symbol, name, opening price in cents.
const LISTINGS: [(&str, &str, i64); 5] = [
    ("ACME", "Acme Corp", 12_450),
    ("GLOBEX", "Globex", 8_730),
    ("HOOLI", "Hooli", 15_990),
    ("INITECH", "Initech", 3_215),
    ("UMBRELLA", "Umbrella", 21_080),
];

/// Chance that a symbol trades in one tick. With the quiet limit below,
/// each symbol trades every 2.4 s on average: 2 price events a second for
/// the 5 symbols, at random moments.
const TRADE_CHANCE: f64 = 0.085;

/// Ticks a symbol may go without trading (5 s at the nominal tick): a page
/// opened at any moment has every row within that time.
const MAX_QUIET_TICKS: u32 = 20;

/// Standard deviation of one move, as a fraction of the price.
const VOLATILITY: f64 = 0.003;

/// How strongly each move pulls the price back towards its opening price
/// (a fraction of the log distance): keeps the walk in a sane range however
/// long the demo runs.
const REVERSION: f64 = 0.02;

/// The lowest price a walk may reach, in cents.
const FLOOR_CENTS: i64 = 100;

/// The `price` event, as subscribers receive it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Price<'a> {
    /// The ticker symbol, also the last segment of the topic.
    pub(crate) symbol: &'a str,
    /// The company name, for display.
    pub(crate) name: &'a str,
    /// The new price, in currency units with two decimals.
    pub(crate) price: f64,
    /// The opening price, what `change` is measured from.
    pub(crate) open: f64,
    /// `price - open`, two decimals.
    pub(crate) change: f64,
    /// The change in percent of `open`, two decimals.
    pub(crate) change_pct: f64,
    /// When the trade happened, milliseconds since the Unix epoch.
    pub(crate) time: u64,
}

/// One symbol's state.
#[derive(Debug)]
struct Stock {
    /// The ticker symbol.
    symbol: &'static str,
    /// The company name.
    name: &'static str,
    /// Where the walk started and is pulled back to.
    open_cents: i64,
    /// The current price.
    cents: i64,
    /// Ticks since the last trade.
    quiet: u32,
}

/// The ticker feed.
#[derive(Debug)]
pub(crate) struct Ticker {
    /// Every symbol's state.
    stocks: Vec<Stock>,
    /// Whether the opening prices went out: the first tick publishes every
    /// symbol, so that a page opened right after the start fills at once.
    opened: bool,
}

impl Ticker {
    pub(crate) fn new() -> Self {
        let stocks = LISTINGS
            .iter()
            .map(|&(symbol, name, open_cents)| Stock {
                symbol,
                name,
                open_cents,
                cents: open_cents,
                quiet: 0,
            })
            .collect();
        Self {
            stocks,
            opened: false,
        }
    }
}

impl Feed for Ticker {
    fn tick(&mut self, tick: &mut Tick<'_>, out: &mut Vec<Update>) {
        let time = tick.unix_ms();
        let opening = !self.opened;
        self.opened = true;
        for stock in &mut self.stocks {
            if !opening {
                stock.quiet += 1;
                if !tick.chance(TRADE_CHANCE) && stock.quiet < MAX_QUIET_TICKS {
                    continue;
                }
                stock.quiet = 0;
                stock.cents = step(stock.cents, stock.open_cents, normal(tick.rng));
            }
            out.push(stock.event(time));
        }
    }
}

impl Stock {
    fn event(&self, time: u64) -> Update {
        let change = self.cents - self.open_cents;
        let price = Price {
            symbol: self.symbol,
            name: self.name,
            price: to_units(self.cents),
            open: to_units(self.open_cents),
            change: to_units(change),
            change_pct: round2(change as f64 * 100.0 / self.open_cents as f64),
            time,
        };
        // The latest price is the symbol's state: a new page gets it first.
        Update {
            retain: true,
            ..json_update(topics::price(self.symbol), topics::PRICE, &price)
        }
    }
}

/// One move of the walk from `cents`, for a standard normal draw `z`: a
/// log-normal step with a pull towards `open`, never below the floor, and
/// never zero (a trade that does not move the price would not show).
fn step(cents: i64, open: i64, z: f64) -> i64 {
    let price = cents as f64;
    let pull = REVERSION * ((open as f64).ln() - price.ln());
    // The value is a few thousand cents at most: the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    let next = (price * (pull + VOLATILITY * z).exp()).round() as i64;
    let next = if next == cents {
        if z >= 0.0 { cents + 1 } else { cents - 1 }
    } else {
        next
    };
    next.max(FLOOR_CENTS)
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    // 1 - [0, 1) is (0, 1]: the logarithm stays finite.
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn to_units(cents: i64) -> f64 {
    cents as f64 / 100.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn tick_at(n: u64, rng: &mut fastrand::Rng) -> Tick<'_> {
        Tick {
            n,
            now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            rng,
        }
    }

    #[test]
    fn first_tick_publishes_every_symbol_then_a_few_trade() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut ticker = Ticker::new();
        let mut out = Vec::new();
        ticker.tick(&mut tick_at(0, &mut rng), &mut out);
        assert_eq!(out.len(), LISTINGS.len());
        let first: serde_json::Value = serde_json::from_str(&out[0].data).unwrap();
        assert_eq!(first["symbol"], "ACME");
        assert_eq!(first["price"], 124.5);
        assert_eq!(first["change"], 0.0);
        assert_eq!(first["time"], 1_700_000_000_000_u64);
        assert_eq!(out[0].topics, ["https://demo.tidings.dev/prices/ACME"]);
        assert_eq!(out[0].event_type.as_deref(), Some("price"));
        assert!(out.iter().all(|u| u.retain), "prices are retained");

        let mut trades = 0;
        let mut last_trade = std::collections::HashMap::new();
        for n in 1..=4000 {
            out.clear();
            ticker.tick(&mut tick_at(n, &mut rng), &mut out);
            trades += out.len();
            for update in &out {
                let quiet = n - last_trade.insert(update.topics[0].clone(), n).unwrap_or(0);
                assert!(quiet <= u64::from(MAX_QUIET_TICKS), "{quiet} quiet ticks");
            }
        }
        // 4000 ticks × 5 symbols / 9.77 ticks between trades: 2047 on
        // average.
        assert!((1850..2250).contains(&trades), "{trades}");
    }

    #[test]
    fn every_trade_moves_the_price_and_reports_it_consistently() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut ticker = Ticker::new();
        let mut last = std::collections::HashMap::new();
        for n in 0..2000 {
            let mut out = Vec::new();
            ticker.tick(&mut tick_at(n, &mut rng), &mut out);
            for update in out {
                let v: serde_json::Value = serde_json::from_str(&update.data).unwrap();
                let symbol = v["symbol"].as_str().unwrap().to_owned();
                let price = v["price"].as_f64().unwrap();
                let open = v["open"].as_f64().unwrap();
                let change = v["change"].as_f64().unwrap();
                assert!(((price - open) - change).abs() < 0.005, "{v}");
                let pct = v["changePct"].as_f64().unwrap();
                assert!((change * 100.0 / open - pct).abs() < 0.006, "{v}");
                if let Some(before) = last.insert(symbol, price) {
                    assert_ne!(before, price, "a trade that does not move: {v}");
                }
            }
        }
    }

    #[test]
    fn the_walk_stays_in_a_sane_range_for_days() {
        let mut rng = fastrand::Rng::with_seed(3);
        let open = 3_215;
        let mut cents = open;
        let (mut low, mut high) = (cents, cents);
        // About a week of trades of one symbol at 0.4 a second.
        for _ in 0..250_000 {
            cents = step(cents, open, normal(&mut rng));
            low = low.min(cents);
            high = high.max(cents);
        }
        assert!(low >= open / 2 && high <= open * 2, "{low}..{high}");
    }

    #[test]
    fn the_walk_never_goes_below_the_floor() {
        assert_eq!(step(FLOOR_CENTS, 100_000, -50.0), FLOOR_CENTS);
        assert_eq!(step(FLOOR_CENTS + 1, FLOOR_CENTS + 1, -0.1), FLOOR_CENTS);
        assert!(step(5_000, 5_000, 0.0) != 5_000);
    }
}
