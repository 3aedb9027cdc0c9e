#pragma once
// Builds the statement tree from lexed pieces. Operator precedence follows
// Jinja's own parser (loosest first): `x if c else y`, or, and, not,
// comparisons and `in`, + and -, ~, * / // %, **, unary minus, then
// postfix `.attr` `[i]` `[a:b:c]` `(args)` and `| filter` / `is test`.
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_lexer.h"

namespace thinkeys::jinja {

// Throws thinkeys::Error naming the line and the construct for syntax errors
// and for statements this interpreter does not implement (include, import,
// extends, block, call, with, do, recursive loops...).
Body parse(std::vector<Piece> pieces);

}  // namespace thinkeys::jinja
