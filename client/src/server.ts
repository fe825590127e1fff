// The language server's lifecycle: interpreter, start, restart, settings and secrets it gets.
import * as os from 'node:os';
import * as vscode from 'vscode';
import {
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import {
  ALLOW,
  allowWorkspaceInterpreter,
  expandInterpreterSetting,
  Interpreter,
  isWorkspaceValue,
  resolveInterpreter,
  USE_OWN,
} from './interpreter';
import { canRunServer, ensureManagedEnv, pythonExtensionInterpreter } from './managedEnv';
import { NotificationProgressFeature, ProgressEvent } from './progress';

export const API_KEY_SECRET = 'tinyforge.anthropicApiKey';

/** The settings the server reads (initializationOptions and didChangeConfiguration). */
export function serverSettings(): Record<string, unknown> {
  const c = vscode.workspace.getConfiguration('tinyforge');
  return {
    board: c.get<string>('board', ''),
    planner: c.get<string>('planner', 'offline'),
    arenaMargin: c.get<number>('arenaMargin', 0),
    claude: { model: c.get<string>('claude.model', '') },
    convert: { timeoutSeconds: c.get<number>('convert.timeoutSeconds', 0) },
  };
}

export class ServerManager implements vscode.Disposable {
  client: LanguageClient | undefined;
  interpreter: Interpreter | undefined;
  /** Names of the environment variables given to the server beyond the editor's own (never values). */
  extraEnv: string[] = [];
  readonly progressEvents: ProgressEvent[] = [];
  private readonly onProgressEmitter = new vscode.EventEmitter<ProgressEvent>();
  readonly onProgress = this.onProgressEmitter.event;
  private readonly onReadyEmitter = new vscode.EventEmitter<void>();
  readonly onReady = this.onReadyEmitter.event;
  private starting: Promise<void> | undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    readonly output: vscode.OutputChannel,
  ) {}

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  /** Start once; concurrent callers share the same start. */
  start(): Promise<void> {
    if (!this.starting) {
      this.starting = this.doStart().catch((err) => {
        this.starting = undefined;
        throw err;
      });
    }
    return this.starting;
  }

  async ready(): Promise<LanguageClient> {
    await this.start();
    if (!this.client) {
      throw new Error('The TinyForge server is not running.');
    }
    return this.client;
  }

  private async doStart(): Promise<void> {
    const folder = vscode.workspace.workspaceFolders?.[0];
    const config = vscode.workspace.getConfiguration('tinyforge', folder?.uri);
    this.interpreter = await resolveInterpreter({
      setting: () => expandInterpreterSetting(config.get<string>('python.interpreter', ''), folder?.uri.fsPath, os.homedir()),
      settingFromWorkspace: () => isWorkspaceValue(config.inspect<string>('python.interpreter')),
      allowWorkspaceInterpreter: (python) =>
        allowWorkspaceInterpreter(python, {
          workspace: (vscode.workspace.workspaceFile ?? folder?.uri)?.toString() ?? '',
          remembered: (key) => this.context.globalState.get<boolean>(key),
          remember: (key, allowed) => this.context.globalState.update(key, allowed),
          ask: (message, detail) => vscode.window.showWarningMessage(message, { modal: true, detail }, ALLOW, USE_OWN),
        }),
      pythonExtension: () => pythonExtensionInterpreter(folder?.uri),
      hasServer: (python) => canRunServer(python, this.output),
      managed: () => ensureManagedEnv(this.context, this.output),
      log: (message) => this.output.appendLine(`[tinyforge] ${message}`),
    });
    this.output.appendLine(`[tinyforge] server interpreter: ${this.interpreter.python} (${this.interpreter.source})`);

    // PYTHONSAFEPATH: `-m tinyforge.lsp` runs in the workspace folder, whose own `tinyforge/`
    // folder must not be imported in place of the server (Python 3.11+; older ones ignore it).
    const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: '1', PYTHONSAFEPATH: '1' };
    this.extraEnv = ['PYTHONUNBUFFERED', 'PYTHONSAFEPATH'];
    const key = await this.context.secrets.get(API_KEY_SECRET);
    if (key) {
      env.ANTHROPIC_API_KEY = key;
      this.extraEnv.push('ANTHROPIC_API_KEY');
    }
    const model = vscode.workspace.getConfiguration('tinyforge').get<string>('claude.model', '');
    if (model) {
      env.TINYFORGE_CLAUDE_MODEL = model;
      this.extraEnv.push('TINYFORGE_CLAUDE_MODEL');
    }
    const serverOptions: ServerOptions = {
      command: this.interpreter.python,
      args: ['-m', 'tinyforge.lsp'],
      options: { env, cwd: folder?.uri.fsPath },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: 'file', language: 'python' },
        { scheme: 'file', pattern: '**/tinyforge.toml' },
        { scheme: 'file', pattern: '**/platformio.ini' },
      ],
      // The key goes in memory to the server (initializationOptions) and in its environment for
      // the processes it starts; the `tinyforge` settings section never holds it.
      initializationOptions: { tinyforge: { ...serverSettings(), anthropicApiKey: key ?? '' } },
      synchronize: { configurationSection: 'tinyforge' },
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      // A request the editor sends while the server restarts fails; it is asked again anyway.
      middleware: {
        provideCodeActions: (doc, range, ctx, token, next) => this.quiet(() => next(doc, range, ctx, token)),
        provideCodeLenses: (doc, token, next) => this.quiet(() => next(doc, token)),
        provideHover: (doc, pos, token, next) => this.quiet(() => next(doc, pos, token)),
      },
    };
    const client = new LanguageClient('tinyforge', 'TinyForge', serverOptions, clientOptions);
    client.registerFeature(
      new NotificationProgressFeature(client, (e) => {
        this.progressEvents.push(e);
        this.onProgressEmitter.fire(e);
      }),
    );
    this.client = client;
    await client.start();
    this.onReadyEmitter.fire();
  }

  private async quiet<T>(request: () => vscode.ProviderResult<T>): Promise<T | undefined | null> {
    try {
      return await request();
    } catch (err) {
      if (this.client?.state === State.Running && !this.restarting) {
        throw err;
      }
      return undefined;
    }
  }

  private restarting = false;

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.starting = undefined;
    if (client) {
      try {
        await client.dispose(5000); // disposed: its providers go, and it cannot be restarted by a late request
      } catch (err) {
        this.output.appendLine(`[tinyforge] stopping the server: ${String(err)}`);
      }
    }
  }

  async restart(): Promise<void> {
    this.restarting = true;
    try {
      await this.stop();
      await this.start();
    } finally {
      this.restarting = false;
    }
  }

  /** workspace/executeCommand on the server (its commands are the pipeline's stages). */
  async execute<T = Record<string, unknown>>(command: string, ...args: unknown[]): Promise<T> {
    const client = await this.ready();
    return (await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args })) as T;
  }

  /** The commands the running server advertises. */
  serverCommands(): string[] {
    return this.client?.initializeResult?.capabilities.executeCommandProvider?.commands ?? [];
  }

  dispose(): void {
    void this.stop();
    this.onProgressEmitter.dispose();
    this.onReadyEmitter.dispose();
  }
}
