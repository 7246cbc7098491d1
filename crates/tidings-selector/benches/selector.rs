//! Matching and parsing speed: `cargo bench -p tidings-selector`.
#![allow(clippy::unwrap_used)]

use divan::{Bencher, black_box};
use tidings_selector::{Selector, matches_any};

fn main() {
    divan::main();
}

const BOOK: &str = "https://example.com/books/1234";
const REVIEW: &str = "https://example.com/books/1234/reviews/5678";
const SEARCH: &str = "https://example.com/books?author=jane-austen&page=2";
const SEARCH_MISS: &str = "https://example.com/books?author=jane austen&page=2";

fn bench_match(bencher: Bencher<'_, '_>, selector: &str, topic: &str, expected: bool) {
    let selector = Selector::parse(selector);
    assert_eq!(selector.matches(topic), expected);
    bencher.bench_local(|| black_box(&selector).matches(black_box(topic)));
}

#[divan::bench]
fn exact_hit(bencher: Bencher<'_, '_>) {
    bench_match(bencher, BOOK, BOOK, true);
}

#[divan::bench]
fn exact_miss(bencher: Bencher<'_, '_>) {
    bench_match(bencher, BOOK, "https://example.com/books/1235", false);
}

#[divan::bench]
fn any(bencher: Bencher<'_, '_>) {
    bench_match(bencher, "*", BOOK, true);
}

#[divan::bench]
fn one_variable_hit(bencher: Bencher<'_, '_>) {
    bench_match(bencher, "https://example.com/books/{id}", BOOK, true);
}

#[divan::bench]
fn one_variable_miss(bencher: Bencher<'_, '_>) {
    bench_match(bencher, "https://example.com/books/{id}", REVIEW, false);
}

#[divan::bench]
fn one_variable_miss_prefix(bencher: Bencher<'_, '_>) {
    bench_match(
        bencher,
        "https://example.com/books/{id}",
        "https://example.com/users/1",
        false,
    );
}

#[divan::bench]
fn two_variables_hit(bencher: Bencher<'_, '_>) {
    bench_match(
        bencher,
        "https://example.com/books/{id}/reviews/{review}",
        REVIEW,
        true,
    );
}

#[divan::bench]
fn query_hit(bencher: Bencher<'_, '_>) {
    bench_match(
        bencher,
        "https://example.com/books{?author,page}",
        SEARCH,
        true,
    );
}

#[divan::bench]
fn query_miss(bencher: Bencher<'_, '_>) {
    bench_match(
        bencher,
        "https://example.com/books{?author,page}",
        SEARCH_MISS,
        false,
    );
}

/// `/` may belong to the path, but not to `{review}`: the literal is found
/// from the right.
#[divan::bench]
fn reserved_path_hit(bencher: Bencher<'_, '_>) {
    bench_match(
        bencher,
        "https://example.com/{+path}/reviews/{review}",
        REVIEW,
        true,
    );
}

#[divan::bench]
fn reserved_path_miss(bencher: Bencher<'_, '_>) {
    bench_match(
        bencher,
        "https://example.com/{+path}/reviews/{review}",
        "https://example.com/books/1234/ratings/5678",
        false,
    );
}

/// `/` may belong to either path: the general matcher runs.
#[divan::bench]
fn general_matcher_hit(bencher: Bencher<'_, '_>) {
    bench_match(
        bencher,
        "https://example.com/{+shelf}/reviews/{+path}",
        REVIEW,
        true,
    );
}

#[divan::bench]
fn general_matcher_miss(bencher: Bencher<'_, '_>) {
    bench_match(
        bencher,
        "https://example.com/{+shelf}/reviews/{+path}",
        "https://example.com/books/1234/ratings/5678",
        false,
    );
}

/// A subscriber's 10 templates against an update with 2 topics, none
/// matching: the worst case of a subscription check.
#[divan::bench]
fn matches_any_10_templates_miss(bencher: Bencher<'_, '_>) {
    let selectors: Vec<Selector> = (0..10)
        .map(|i| Selector::parse(&format!("https://example.com/shelf{i}/{{id}}")))
        .collect();
    let topics = [BOOK, REVIEW];
    assert!(!matches_any(&selectors, &topics));
    bencher.bench_local(|| matches_any(black_box(&selectors), black_box(&topics)));
}

#[divan::bench]
fn parse_template(bencher: Bencher<'_, '_>) {
    bencher.bench_local(|| Selector::parse(black_box("https://example.com/books/{id}{?page}")));
}

#[divan::bench]
fn parse_exact(bencher: Bencher<'_, '_>) {
    bencher.bench_local(|| Selector::parse(black_box(BOOK)));
}
