// Reference renderer for the chat-template tests: @huggingface/jinja.
// Reads {"cases": [{"template": str, "variables": {...}}, ...]} on stdin and
// prints a JSON list with {"text": str} or {"error": str} per case.
import { Template } from "@huggingface/jinja";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { cases } = JSON.parse(input);
const out = cases.map(({ template, variables }) => {
  try {
    return { text: new Template(template).render(variables) };
  } catch (e) {
    return { error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(out));
