-- Headless Neovim as an outside LSP client of the TinyForge server: attach to the buffer,
-- wait for diagnostics, print them one per line ("LINE:COL SEVERITY [source] message").
-- Neovim 0.7 (Debian) has no vim.lsp.start: use start_client + buf_attach_client.
local python = os.getenv('TINYFORGE_PYTHON') or 'python3'
local wait_ms = tonumber(os.getenv('TINYFORGE_WAIT_MS') or '15000')
local bufnr = vim.api.nvim_get_current_buf()
local file = vim.api.nvim_buf_get_name(bufnr)
local client_id = vim.lsp.start_client({
  name = 'tinyforge',
  cmd = { python, '-m', 'tinyforge.lsp' },
  root_dir = vim.fn.fnamemodify(file, ':p:h'),
  init_options = { board = os.getenv('TINYFORGE_BOARD') },
})
vim.lsp.buf_attach_client(bufnr, client_id)
local ok = vim.wait(wait_ms, function() return #vim.diagnostic.get(bufnr) > 0 end, 50)
local out = {}
for _, d in ipairs(vim.diagnostic.get(bufnr)) do
  table.insert(out, string.format('%d:%d %s [%s] %s', d.lnum + 1, d.col + 1,
    vim.diagnostic.severity[d.severity], d.source or '', d.message))
end
io.stdout:write(table.concat(out, '\n') .. '\n')
vim.lsp.stop_client(client_id)
vim.wait(2000, function() return vim.lsp.get_client_by_id(client_id) == nil end, 50)
if ok then vim.cmd('qa!') else vim.cmd('cquit 1') end
