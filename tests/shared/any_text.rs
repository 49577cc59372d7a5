//! A text the tests write themselves, unlike any the book uses: accented
//! letters, Greek, dashes, curly quotes and an ellipsis among plain English,
//! 90 distinct characters in all (tiny Shakespeare has 65).

/// About 40,000 characters of it, the same every time.
pub fn any_text() -> String {
    let words = [
        "the",
        "and",
        "of",
        "to",
        "a",
        "in",
        "that",
        "is",
        "was",
        "he",
        "for",
        "it",
        "with",
        "as",
        "his",
        "on",
        "be",
        "at",
        "by",
        "I",
        "café",
        "naïve",
        "élan",
        "über",
        "straße",
        "año",
        "façade",
        "déjà",
        "vu",
        "Ωμέγα",
        "ελληνικά",
        "Ünïcödé",
        "ÀÉÎÕÜ",
        "çœæ",
        "øre",
        "åsa",
        "Zoë",
        "X-ray",
        "Quinn",
        "jazz",
        "Kyoto",
        "Vivaldi",
        "Bjørn",
        "Île",
        "Fjord",
        "why?",
        "yes!",
        "no;",
        "so:",
        "42",
        "1789",
        "3.14",
        "(aside)",
        "[note]",
        "x+y=z",
        "50%",
        "#1",
        "@home",
        "*",
        "&",
        "'tis",
        "Hamlet",
        "Ophelia",
        "Wolfgang",
    ];
    let marks = [" — ", " – ", " “", "” ", " ‘", "’ ", "… ", ", ", ". ", "\n"];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15; // a fixed seed: the same text every run
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut text = String::new();
    while text.chars().count() < 40_000 {
        text.push_str(words[next(words.len())]);
        let mark = if next(4) == 0 {
            marks[next(marks.len())]
        } else {
            " "
        };
        text.push_str(mark);
    }
    text
}
