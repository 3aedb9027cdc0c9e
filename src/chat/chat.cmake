# Chat: the Jinja interpreter, chat templates and the `tokenize` / `chat`
# subcommands. Torch-free (the server links it too). Included from the
# top-level CMakeLists.txt after the thinkeys executable is defined.
thinkeys_library(thinkeys_chat DEPENDS thinkeys_tokenizer SOURCES
  src/chat/jinja_value.cpp
  src/chat/jinja_lexer.cpp
  src/chat/jinja_parser.cpp
  src/chat/jinja_builtins.cpp
  src/chat/jinja_template.cpp
  src/chat/chat_template.cpp
)

target_sources(thinkeys PRIVATE src/cli/cmd_tokenize.cpp src/cli/cmd_chat.cpp)
target_link_libraries(thinkeys PRIVATE thinkeys_chat)
