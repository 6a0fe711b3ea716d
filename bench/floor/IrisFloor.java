import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;
import org.modelrunner.samples.iris.IrisClassifier;
import org.modelrunner.samples.iris.IrisInput;
import org.modelrunner.samples.iris.IrisPrediction;

/**
 * The floor of bench/speed_bench.py: the iris sample JAR behind the JDK's own HTTP server, as a Java team
 * would write it without a framework. 16 threads, TCP_NODELAY, JSON read and written by hand.
 *
 * <p>java -Dsun.net.httpserver.nodelay=true -cp floor:model.jar IrisFloor PORT (0: a free one; prints port=N)
 */
public final class IrisFloor {
    static final String PATH = "/models/iris/methods/Classify";
    static final IrisClassifier MODEL = new IrisClassifier();

    public static void main(String[] args) throws IOException {
        System.setProperty("sun.net.httpserver.nodelay", "true"); // read when the server class loads
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])), 1024);
        server.createContext(PATH, IrisFloor::handle);
        server.setExecutor(Executors.newFixedThreadPool(16));
        server.start();
        System.out.println("port=" + server.getAddress().getPort());
    }

    static void handle(HttpExchange exchange) throws IOException {
        byte[] body = exchange.getRequestBody().readAllBytes();
        int status = 200;
        String answer;
        if (!exchange.getRequestURI().getPath().equals(PATH) || !exchange.getRequestMethod().equals("POST")) {
            status = 404;
            answer = "{\"error\":\"not found\"}";
        } else {
            try {
                answer = toJson(MODEL.classify(parseFlower(new String(body, StandardCharsets.UTF_8))));
            } catch (IllegalArgumentException e) {
                status = 400;
                answer = "{\"error\":\"" + e.getMessage().replace("\\", "\\\\").replace("\"", "\\\"") + "\"}";
            }
        }
        byte[] out = answer.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, out.length);
        try (OutputStream stream = exchange.getResponseBody()) {
            stream.write(out);
        }
    }

    /** A flat JSON object of the four measurements: {"sepal_length": 5.1, ...}; a missing one is 0. */
    static IrisInput parseFlower(String json) {
        IrisInput in = new IrisInput();
        int i = json.indexOf('{');
        if (i < 0) throw new IllegalArgumentException("the body is not a JSON object");
        while (true) {
            int keyStart = json.indexOf('"', i + 1);
            if (keyStart < 0) return in;
            int keyEnd = json.indexOf('"', keyStart + 1);
            int colon = json.indexOf(':', keyEnd);
            int end = colon + 1;
            while (end < json.length() && ",}".indexOf(json.charAt(end)) < 0) end++;
            if (keyEnd < 0 || colon < 0 || end == json.length()) throw new IllegalArgumentException("malformed JSON");
            double value;
            try {
                value = Double.parseDouble(json.substring(colon + 1, end).trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("not a number at offset " + (colon + 1));
            }
            switch (json.substring(keyStart + 1, keyEnd)) {
                case "sepal_length", "sepalLength" -> in.setSepalLength(value);
                case "sepal_width", "sepalWidth" -> in.setSepalWidth(value);
                case "petal_length", "petalLength" -> in.setPetalLength(value);
                case "petal_width", "petalWidth" -> in.setPetalWidth(value);
                default -> throw new IllegalArgumentException("unknown field " + json.substring(keyStart + 1, keyEnd));
            }
            i = end;
        }
    }

    static String toJson(IrisPrediction p) {
        StringBuilder sb = new StringBuilder(96).append("{\"species\":\"").append(p.species).append("\",\"probabilities\":[");
        for (int k = 0; k < p.probabilities.length; k++) sb.append(k == 0 ? "" : ",").append(p.probabilities[k]);
        return sb.append("]}").toString();
    }
}
