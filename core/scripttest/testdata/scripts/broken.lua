local M = {
function M.message(msg) end
