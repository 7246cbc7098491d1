//! Matching case by case: Mercure's examples, every operator and modifier,
//! and a table checked against what `github.com/yosida95/uritemplate/v3`
//! (the library the Mercure hub matches with) decides.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use tidings_selector::{Selector, SelectorKind, matches_any};

/// Asserts that `template` matches each of `yes` and none of `no`.
fn check(template: &str, yes: &[&str], no: &[&str]) {
    let selector = Selector::parse(template);
    for topic in yes {
        assert!(
            selector.matches(topic),
            "{template:?} should match {topic:?}"
        );
    }
    for topic in no {
        assert!(
            !selector.matches(topic),
            "{template:?} should not match {topic:?}"
        );
    }
}

#[test]
fn mercure_examples() {
    check(
        "https://example.com/books/{id}",
        &[
            "https://example.com/books/1",
            "https://example.com/books/",
            "https://example.com/books/{id}",
        ],
        &[
            "https://example.com/books/1/reviews",
            "https://example.com/books",
            "https://example.com/books/1?page=2",
            "https://example.org/books/1",
        ],
    );
    let any = Selector::parse("*");
    assert_eq!(any.kind(), SelectorKind::Any);
    for topic in ["", "*", "https://example.com/books/1", "anything at all"] {
        assert!(any.matches(topic));
    }
    check(
        "https://example.com/books/1",
        &["https://example.com/books/1"],
        &[
            "https://example.com/books/2",
            "https://example.com/books/1/",
            "",
        ],
    );
}

#[test]
fn kinds() {
    let kind = |source: &str| Selector::parse(source).kind();
    assert_eq!(kind("*"), SelectorKind::Any);
    assert_eq!(kind("**"), SelectorKind::Exact);
    assert_eq!(kind(""), SelectorKind::Exact);
    assert_eq!(kind("https://example.com/books/1"), SelectorKind::Exact);
    assert_eq!(
        kind("https://example.com/books/{id}"),
        SelectorKind::Template
    );
    assert_eq!(kind("{}"), SelectorKind::Template);
    // Not templates by the Go library's grammar: exact selectors.
    for source in [
        "https://example.com/{",
        "https://example.com/{id",
        "https://example.com/}{id}",
        "https://example.com/{a.b}",
        "https://example.com/{%41}",
        "https://example.com/{x:}",
        "https://example.com/{x:0}",
        "https://example.com/{=x}",
        "https://example.com/a b/{id}",
    ] {
        let selector = Selector::parse(source);
        assert_eq!(selector.kind(), SelectorKind::Exact, "{source:?}");
        assert!(selector.matches(source));
        assert!(!selector.matches("https://example.com/1"), "{source:?}");
    }
}

#[test]
fn simple_expansion() {
    check(
        "{var}",
        &[
            "value",
            "",
            "Hello%20World%21",
            "50%25",
            "a,b,c",
            "%C3%A9",
            "a-._~Z9",
        ],
        &[
            "a/b", "a=b", "a b", "é", "50%", "50%2", "%zz", "a?b", "a#b", "a&b",
        ],
    );
}

#[test]
fn reserved_expansion() {
    check(
        "{+path}/here",
        &["/foo/bar/here", "/here", "a/b,c;d=e?f#g/here", "%20/here"],
        &[
            "/foo/bar/there",
            "here",
            "/foo bar/here",
            "/é/here",
            "/foo/bar/here/",
        ],
    );
    check(
        "here?ref={+path}",
        &[
            "here?ref=/foo/bar",
            "here?ref=",
            "here?ref=http://a.b/c?d=e&f",
        ],
        &["here?ref=a b", "here?ref=<a>", "there?ref=/x"],
    );
}

#[test]
fn fragment_expansion() {
    check(
        "foo{#frag}",
        &["foo", "foo#", "foo#value", "foo#/a/b?c,d", "foo#a#b"],
        &["fooa", "foo/a", "foo#a b", "foo#é"],
    );
}

#[test]
fn label_expansion() {
    check(
        "X{.var}",
        &["X", "X.", "X.value", "X.a.b.c", "X.a,b"],
        &["Xvalue", "X.a/b", "Y.value", "X.a=b"],
    );
    check(
        "www{.dom*}",
        &["www.example.com", "www.a=b.c=d"],
        &["www.a/b"],
    );
}

#[test]
fn path_segments() {
    check(
        "{/var}",
        &["", "/", "/value", "/a,b", "/me%2Ftoo"],
        &["value", "/a/b", "/a?b", "//"],
    );
    check(
        "{/x,y}",
        &["/1024/768", "/1024", "/a,b/c", "//", "/"],
        &["/a/b/c", "/a/b?c"],
    );
    check(
        "{/list*}",
        &["/red/green/blue", "/a/b/c/d/e/f", "/k=v/k2=v2", "/"],
        &["red/green", "/a?b"],
    );
}

#[test]
fn path_parameters() {
    check(
        "{;x,y}",
        &[";x=1024;y=768", ";x=1024", ";y", ";x=1,2,3;y=4", ""],
        &[";x=1;y=2;z=3", "x=1", ";x=a/b", ";x=1&y=2"],
    );
    check(
        "{;list*}",
        &[";list=red;list=green;list=blue", ";a;b;c;d"],
        &[";a/b"],
    );
}

#[test]
fn query() {
    check(
        "https://example.com/books{?x,y}",
        &[
            "https://example.com/books",
            "https://example.com/books?",
            "https://example.com/books?x=1024&y=768",
            "https://example.com/books?x=1024",
            "https://example.com/books?y=768",
            "https://example.com/books?x=a,b,c",
            "https://example.com/books?x=a%2Fb",
            "https://example.com/books?x=1024&y=",
        ],
        &[
            "https://example.com/books?x=1&y=2&z=3",
            "https://example.com/booksx=1",
            "https://example.com/books/?x=1",
            "https://example.com/books?x=a/b",
            "https://example.com/books?x=a b",
            "https://example.com/books?x=1#frag",
            "https://example.com/books?x=1?y=2",
        ],
    );
    check(
        "{?list*}",
        &["?list=red&list=green&list=blue", "?a=1&b=2&c=3&d=4"],
        &["?a=1&b=/"],
    );
}

#[test]
fn query_continuation() {
    check(
        "?fixed=yes{&x}",
        &[
            "?fixed=yes",
            "?fixed=yes&x=1024",
            "?fixed=yes&",
            "?fixed=yes&x",
        ],
        &["?fixed=yes&x=1&y=2", "?fixed=no&x=1", "?fixed=yes?x=1"],
    );
    check(
        "{&x,y,empty}",
        &["&x=1024&y=768&empty=", "&x=1024"],
        &["&x=1&y=2&z=3&w=4"],
    );
}

#[test]
fn explode_and_prefix_modifiers() {
    check(
        "{/list*,path:4}",
        &["/red/green/blue/%2Ffoo", "/red", "/a/b/c/d/e"],
        &["/a/b?c"],
    );
    check("{keys*}", &["semi=%3B,dot=.,comma=%2C"], &["semi=%3B/dot"]);
    check("{keys}", &["semi,%3B,dot,.,comma,%2C"], &["semi=%3B"]);
    // Prefixes do not limit the length, as in Mercure (see the crate docs).
    check("{var:3}", &["val", "value", ""], &["va/l"]);
    check(
        "https://example.com/dictionary/{term:1}/{term}",
        &["https://example.com/dictionary/c/cat"],
        &["https://example.com/dictionary/c/a/cat"],
    );
}

#[test]
fn undefined_and_empty_variables() {
    check("O{empty}X", &["OX", "OvalueX"], &["O/X"]);
    check("O{+undef}X", &["OX"], &["O X"]);
    check("{/var,empty}", &["/value/", "/value"], &[]);
    check("X{.empty}", &["X.", "X"], &[]);
    check("{;empty}", &[";empty", ""], &[]);
    // Every variable of an expression may be undefined at once.
    check(
        "https://example.com{/a,b}{?c,d}{#e}",
        &[
            "https://example.com",
            "https://example.com/1/2?c=3&d=4#5",
            "https://example.com?c=3",
            "https://example.com#top",
            "https://example.com/1#top",
        ],
        &[
            "https://example.com?c=3/1",
            "https://example.com/1/2/3",
            "https://example.com#a b",
        ],
    );
}

#[test]
fn literals_with_reserved_characters() {
    check(
        "https://example.com/search?q={q}&page={page}",
        &[
            "https://example.com/search?q=rust&page=2",
            "https://example.com/search?q=&page=",
            "https://example.com/search?q=a%26b&page=2",
        ],
        &[
            "https://example.com/search?q=rust&page=2&x=1",
            "https://example.com/search?q=a&b&page=2",
            "https://example.com/search?page=2&q=rust",
        ],
    );
    check(
        "urn:isbn:{isbn}",
        &["urn:isbn:0451450523", "urn:isbn:"],
        &["urn:isbn:0451:450523"],
    );
    check(
        "https://example.com/a#b{/c}",
        &["https://example.com/a#b/c", "https://example.com/a#b"],
        &["https://example.com/a#bc"],
    );
    // Pct-encoded triplets of literals are compared as written.
    check(
        "https://example.com/a%2Fb/{x}",
        &["https://example.com/a%2Fb/1"],
        &["https://example.com/a%2fb/1", "https://example.com/a/b/1"],
    );
    // Non-ASCII literals match themselves.
    check(
        "https://example.com/日本/{x}",
        &["https://example.com/日本/1"],
        &["https://example.com/%E6%97%A5%E6%9C%AC/1"],
    );
}

#[test]
fn tricky_non_matches() {
    check(
        "https://example.com/books/{id}",
        &[],
        &[
            // a `/` inside a simple value
            "https://example.com/books/1/2",
            // a `?` where only a path value may be
            "https://example.com/books/1?x",
            "https://example.com/books/50%",
            "https://example.com/books/50%2",
            "https://example.com/books/é",
            "https://example.com/books/1\n",
            "HTTPS://example.com/books/1",
            "https://example.com/book/1",
        ],
    );
    check(
        "https://example.com/{/path}",
        &["https://example.com//a"],
        &[
            "https://example.com/a",
            "https://example.com//a/b",
            "https://example.com//a?b",
        ],
    );
    check("{x}{y}", &["", "a", "a,b"], &["a/b", "a=b"]);
}

#[test]
fn adjacent_and_ambiguous_expressions() {
    // `/` may belong to `{+a}` or start the literal: the general matcher.
    check(
        "{+a}/{b}/end",
        &["x/y/end", "x/y/z/end", "/z/end", "//end", "a/b/c/d/e/end"],
        &["x/y/z/end/", "x/end", "x/y/z/en"],
    );
    check(
        "{/a}{/b}{.c}",
        &["/1/2.json", "/1", "/1/2", ".json", "", "/1.a.b"],
        &["/1/2/3", "/1/2.json/3"],
    );
    check(
        "{?a}{&b}",
        &["?a=1&b=2", "&b=2", "?a=1"],
        &["?a=1&b=2&c=3", "&b=1?a=2"],
    );
    check("{#a}#{b}", &["#", "##", "#x#y", "#x#"], &["x#y"]);
    check(
        "a{x}a{y}a",
        &["aaa", "abaca", "aaaaa"],
        &["aa", "aba", "ab/a"],
    );
}

#[test]
fn matches_any_over_selectors_and_topics() {
    let selectors = [
        Selector::parse("https://example.com/books/{id}"),
        Selector::parse("https://example.com/users/1"),
    ];
    assert!(matches_any(&selectors, &["https://example.com/users/1"]));
    assert!(matches_any(
        &selectors,
        &["x", "https://example.com/books/9"]
    ));
    assert!(!matches_any(&selectors, &["https://example.com/users/2"]));
    assert!(!matches_any(&selectors, &[] as &[&str]));
    assert!(!matches_any(&[], &["https://example.com/users/1"]));
    let owned = vec!["https://example.com/books/3".to_owned()];
    assert!(matches_any(&selectors, &owned));
}

#[test]
fn identity_goes_by_source_text() {
    let a = Selector::parse("https://example.com/{id}");
    let b = Selector::from("https://example.com/{id}".to_owned());
    assert_eq!(a, b);
    assert_ne!(a, Selector::parse("https://example.com/{+id}"));
    let set: std::collections::HashSet<Selector> = [a.clone(), b].into_iter().collect();
    assert_eq!(set.len(), 1);
    assert_eq!(a.as_str(), "https://example.com/{id}");
    assert_eq!(a.to_string(), "https://example.com/{id}");
    assert!(format!("{a:?}").contains("Template"));
}

/// What `github.com/yosida95/uritemplate/v3` says, as the Mercure hub uses
/// it: `Template.Regexp().MatchString(topic)` (Mercure checks `*` and
/// equality first). The rows marked "RFC" are the library's own test table
/// (`testTemplateCases`, RFC 6570 section 3.2 examples), which its
/// `TestTemplateRegexp` asserts all match; where that table marks
/// `failMatch`, its `Template.Match` fails on the row although `Regexp`
/// matches. The other rows follow from how `expression.regexp` builds the
/// expression's pattern, as the comment of each says.
#[test]
fn agrees_with_the_go_library() {
    #[rustfmt::skip]
    let table: &[(&str, &str, bool)] = &[
        // RFC 3.2.1: lists, exploded or not.
        ("{count}", "one,two,three", true),
        ("{count*}", "one,two,three", true),
        ("{/count}", "/one,two,three", true),
        ("{/count*}", "/one/two/three", true),
        ("{;count}", ";count=one,two,three", true),
        ("{;count*}", ";count=one;count=two;count=three", true),
        ("{?count}", "?count=one,two,three", true),
        ("{?count*}", "?count=one&count=two&count=three", true),
        ("{&count*}", "&count=one&count=two&count=three", true),
        // RFC 3.2.2: simple string expansion.
        ("{hello}", "Hello%20World%21", true),
        ("O{empty}X", "OX", true),
        ("{x,y}", "1024,768", true),
        ("{x,hello,y}", "1024,Hello%20World%21,768", true), // failMatch: Match says no
        ("?{x,empty}", "?1024,", true),
        ("?{undef,y}", "?768", true), // failMatch: Match says no
        ("{var:30}", "value", true),
        ("{keys}", "semi,%3B,dot,.,comma,%2C", true), // failMatch
        ("{keys*}", "semi=%3B,dot=.,comma=%2C", true), // failMatch
        // RFC 3.2.3: reserved expansion.
        ("{+hello}", "Hello%20World!", true),
        ("{base}index", "http%3A%2F%2Fexample.com%2Fhome%2Findex", true),
        ("{+base}index", "http://example.com/home/index", true),
        ("up{+path}{var}/here", "up/foo/barvalue/here", true), // failMatch
        ("{+path:6}/here", "/foo/b/here", true),
        ("{+keys*}", "semi=;,dot=.,comma=,", true), // failMatch
        // RFC 3.2.4: fragment expansion.
        ("foo{#empty}", "foo#", true),
        ("foo{#undef}", "foo", true),
        ("{#path,x}/here", "#/foo/bar,1024/here", true), // failMatch
        // RFC 3.2.5: label expansion.
        ("{.who,who}", ".fred.fred", true), // failMatch
        ("www{.dom*}", "www.example.com", true), // failMatch
        ("X{.keys*}", "X.semi=%3B.dot=..comma=%2C", true), // failMatch
        ("X{.empty_keys*}", "X", true),
        // RFC 3.2.6: path segments.
        ("{/who,who}", "/fred/fred", true), // failMatch
        ("{/who,dub}", "/fred/me%2Ftoo", true),
        ("{/var,empty}", "/value/", true),
        ("{/list*,path:4}", "/red/green/blue/%2Ffoo", true),
        ("{/keys*}", "/semi=%3B/dot=./comma=%2C", true), // failMatch
        // RFC 3.2.7: path-style parameters.
        ("{;v,empty,who}", ";v=6;empty;who=fred", true),
        ("{;hello:5}", ";hello=Hello", true),
        ("{;keys*}", ";semi=%3B;dot=.;comma=%2C", true), // failMatch
        // RFC 3.2.8 and 3.2.9: queries.
        ("{?x,y,empty}", "?x=1024&y=768&empty=", true),
        ("{?keys*}", "?semi=%3B&dot=.&comma=%2C", true), // failMatch
        ("?fixed=yes{&x}", "?fixed=yes&x=1024", true),
        ("{&var:3}", "&var=val", true),
        ("{special_chars}", "2001%3Adb8%3A%3A35", true),
        // The library's ExampleTemplate_Regexp: true, then false.
        ("https://example.com/dictionary/{term:1}/{term}", "https://example.com/dictionary/c/cat", true),
        ("https://example.com/dictionary/{term:1}/{term}", "https://example.com/dictionary/c/a/cat", false),
        // Two non-exploded variables: `(?:/VALUE(?:/VALUE){0,1})?`, at most one more `/`.
        ("{/x,y}", "/a/b/c", false),
        // One variable, no exploding: no repetition group, so no `&` at all.
        ("{?x}", "?a=1&b=2", false),
        // Same for `;`.
        ("{;x}", ";x=1;y=2", false),
        // Three variables: `{0,2}` repetitions of `&VALUE`.
        ("{&x,y,z}", "&a&b&c", true),
        ("{&x,y,z}", "&a&b&c&d", false),
        // A simple value's class is `[,` unreserved`]`: no `=`, no `/`.
        ("{x}", "a=b", false),
        ("{x}", "a/b", false),
        // `%[[:xdigit:]][[:xdigit:]]` only: a lone or short `%` fails.
        ("{x}", "50%", false),
        ("{x}", "%4", false),
        ("{x}", "%4a", true),
        // The leading `#` is required once the expression expands to anything.
        ("{#x}", "a", false),
        ("{.x}", "a", false),
        // Reserved class: no space, no non-ASCII character.
        ("{+x}", "a b", false),
        ("{+x}", "é", false),
        ("{+x}", "%C3%A9", true),
        // Prefixes are not in the pattern (Match would check them: no).
        ("{x:3}", "value", true),
        // Names are not in the pattern (Match would check them: no).
        ("{?x}", "?y=1", true),
        ("{;x}", ";y", true),
        // Named classes hold `=` and `,`.
        ("{?x}", "?x=a,b=c", true),
        // Literals are quoted: `.` is not a wildcard.
        ("a.b{x}", "aXb", false),
        ("a.b{x}", "a.b", true),
        // Anchored at both ends.
        ("a{x}", "ba", false),
        ("{x}a", "ab", false),
        // Mercure treats sources without `{` as exact: a literal-only text.
        ("https://example.com/a", "https://example.com/a", true),
        ("https://example.com/a", "https://example.com/A", false),
    ];
    assert!(table.len() >= 30);
    for &(template, topic, expected) in table {
        assert_eq!(
            Selector::parse(template).matches(topic),
            expected,
            "{template:?} against {topic:?}"
        );
    }
}

/// The one place this crate is wider than the Go library (see the crate
/// documentation): `=` before the first separator of an expression whose
/// first variable is not exploded but a later one is.
#[test]
fn exploded_pairs_after_an_undefined_variable() {
    // RFC 6570: a undefined, b = {k: "v"} (exploded) expands to `/k=v`.
    check("{/a,b*}", &["/k=v", "/x/k=v"], &["/k=v?"]);
    check("{a,b*}", &["k=v", "x,k=v,k2=v2"], &["k=v/"]);
    check("X{.a,b*}", &["X.k=v"], &["X.k=v/"]);
}
