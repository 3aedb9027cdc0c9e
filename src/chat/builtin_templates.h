#pragma once
// Chat formats for models whose files carry no template, written for this
// interpreter from the formats' published descriptions.
#include <string_view>

namespace thinkeys::chat {

struct BuiltinTemplate {
  std::string_view name;
  std::string_view source;
};

// <|im_start|>role\ncontent<|im_end|>\n per message (Qwen, many fine-tunes).
inline constexpr std::string_view kChatML =
    "{%- for message in messages %}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "{{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n";

// Llama-3 instruct: header ids around the role, <|eot_id|> after each turn.
inline constexpr std::string_view kLlama3 =
    "{{- bos_token }}\n"
    "{%- for message in messages %}\n"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}\n"
    "{{- message['content'] | trim }}\n"
    "{{- '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n";

// Llama-2 chat: [INST] ... [/INST] per user turn, the system prompt inside
// <<SYS>> in the first one, each exchange wrapped in BOS ... EOS.
inline constexpr std::string_view kLlama2 =
    "{%- if messages and messages[0]['role'] == 'system' %}\n"
    "{%- set system = messages[0]['content'] %}\n"
    "{%- set turns = messages[1:] %}\n"
    "{%- else %}\n"
    "{%- set system = none %}\n"
    "{%- set turns = messages %}\n"
    "{%- endif %}\n"
    "{%- for message in turns %}\n"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "{{- raise_exception('Llama-2 conversations alternate user and assistant turns, starting "
    "with user') }}\n"
    "{%- endif %}\n"
    "{%- if message['role'] == 'user' %}\n"
    "{%- set text = message['content'] %}\n"
    "{%- if loop.first and system is not none %}\n"
    "{%- set text = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + text %}\n"
    "{%- endif %}\n"
    "{{- bos_token + '[INST] ' + text | trim + ' [/INST]' }}\n"
    "{%- else %}\n"
    "{{- ' ' + message['content'] | trim + ' ' + eos_token }}\n"
    "{%- endif %}\n"
    "{%- endfor %}\n";

// Mistral instruct (v0.1 style): one BOS, [INST] ... [/INST] per user turn,
// the system prompt before the first user message, EOS after each answer.
inline constexpr std::string_view kMistral =
    "{%- if messages and messages[0]['role'] == 'system' %}\n"
    "{%- set system = messages[0]['content'] %}\n"
    "{%- set turns = messages[1:] %}\n"
    "{%- else %}\n"
    "{%- set system = none %}\n"
    "{%- set turns = messages %}\n"
    "{%- endif %}\n"
    "{{- bos_token }}\n"
    "{%- for message in turns %}\n"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "{{- raise_exception('Mistral conversations alternate user and assistant turns, starting "
    "with user') }}\n"
    "{%- endif %}\n"
    "{%- if message['role'] == 'user' %}\n"
    "{%- if loop.first and system is not none %}\n"
    "{{- '[INST] ' + system + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
    "{%- else %}\n"
    "{{- '[INST] ' + message['content'] + ' [/INST]' }}\n"
    "{%- endif %}\n"
    "{%- else %}\n"
    "{{- message['content'] + eos_token }}\n"
    "{%- endif %}\n"
    "{%- endfor %}\n";

inline constexpr BuiltinTemplate kBuiltinTemplates[] = {
    {"chatml", kChatML}, {"llama2", kLlama2}, {"llama3", kLlama3}, {"mistral", kMistral}};

}  // namespace thinkeys::chat
