//! Any text: the language models on a text of the test's own.

use super::*;

// The vocabulary comes from the data: the language models (bigram, head and
// chapter 8's small GPT) train on a text of 90 characters (accents, Greek,
// dashes, curly quotes), save it in their checkpoints, resume, and generate
// from prompts in it.
#[test]
fn any_text_trains_saves_resumes_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("any.txt"), shared::any_text()).unwrap();
    let commands: [&[&str]; 3] = [&["bigram"], &["head"], &["gpt", "--preset", "small"]];
    for command in commands {
        let model = command.last().copied().unwrap();
        let save = format!("{model}.safetensors");
        let quick = [
            "--data",
            "any.txt",
            "--eval-iters",
            "20",
            "--tokens",
            "30",
            "--json",
        ];
        let mut args = command.to_vec();
        args.extend(["--steps", "400", "--save", &save]);
        args.extend(quick);
        let o = charlm(&args, d);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let v = json_of(&o);
        assert!(v["vocab"].as_u64().unwrap() > 80, "{v}");
        let (initial, val) = (
            v["initial_loss"].as_f64().unwrap(),
            v["val_loss"].as_f64().unwrap(),
        );
        assert!(val < initial - 0.8, "{model}: {initial} -> {val}");
        if command.len() == 1 {
            // `train --model` is the same command
            let mut args = vec!["train", "--model", model, "--steps", "400"];
            args.extend(quick);
            let o = charlm(&args, d);
            assert!(o.status.success(), "{model}: {}", stderr(&o));
            assert_eq!(json_of(&o)["val_loss"], v["val_loss"], "{model}");
        }
        // resumed for 100 more steps
        let mut args = command.to_vec();
        args.extend(["--resume", &save, "--steps", "500"]);
        args.extend(quick);
        let o = charlm(&args, d);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        assert_eq!(json_of(&o)["steps"], 500);
        // generated from a prompt of characters only this text has
        let prompt = "Ωμέγα “café” — ";
        let args = [
            "generate",
            "--checkpoint",
            &save,
            "--prompt",
            prompt,
            "--tokens",
            "40",
        ];
        let o = charlm(&args, d);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let text = stdout(&o);
        assert!(text.starts_with(prompt), "{text}");
        let n = text.trim_end_matches('\n').chars().count();
        assert!(n >= prompt.chars().count() + 39, "{model}: {text:?}");
        fails(
            &["generate", "--checkpoint", &save, "--prompt", "日本"],
            d,
            "character '日' at position 0 is not in the vocabulary",
        );
    }
    // an unknown model is clap's usage error (exit 2), naming the choices
    let o = charlm("train --model gpt-7", d);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown model; choose from bigram, head"),
        "{}",
        stderr(&o)
    );
}
