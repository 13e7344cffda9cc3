/**
 * `evaporate documents list | head`: when the reader of our output goes away, writing fails with EPIPE (Node ignores
 * SIGPIPE, so the error arrives as an 'error' event and would crash with a stack trace). Nobody is left to read
 * anything, so stop quietly with the exit status we would have had.
 */
export function exitQuietlyWhenOutputCloses(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      process.exit(process.exitCode ?? 0);
    });
  }
}
