import { useMemo } from "react";
import { diffLines } from "../lib/diff";

/** Original and modified text side by side in one column, changed lines marked. */
export function DiffView({ original, modified, label }: { original: string; modified: string; label: string }) {
  const lines = useMemo(() => diffLines(original, modified), [original, modified]);
  return (
    <pre className="diff" aria-label={label}>
      {lines.map((line, i) => (
        <div key={i} className={`diff-${line.kind}`}>
          <span aria-hidden="true">{line.kind === "added" ? "+" : line.kind === "removed" ? "-" : " "}</span>
          {line.kind !== "same" && <span className="sr-only">{line.kind} </span>}
          {line.text}
        </div>
      ))}
    </pre>
  );
}

/** A unified diff as the editor reports it (`+`/`-` prefixed lines). */
export function UnifiedDiff({ text, label }: { text: string; label: string }) {
  return (
    <pre className="diff" aria-label={label}>
      {text
        .split("\n")
        // The file is named above; the header lines carry its absolute path in the sandbox.
        .filter((line) => !line.startsWith("--- ") && !line.startsWith("+++ "))
        .map((line, i) => {
        const kind = line.startsWith("+") && !line.startsWith("+++")
          ? "added"
          : line.startsWith("-") && !line.startsWith("---")
            ? "removed"
            : "same";
        return (
          <div key={i} className={`diff-${kind}`}>
            {line}
          </div>
        );
      })}
    </pre>
  );
}
